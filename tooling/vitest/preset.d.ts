import type { UserConfig } from 'vitest/config';

export function vitestPreset(overrides?: NonNullable<UserConfig['test']>): UserConfig;
