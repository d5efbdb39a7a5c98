import { vitestPreset } from '@mvp/vitest-config';

export default vitestPreset();
