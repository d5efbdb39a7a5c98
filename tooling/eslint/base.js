import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * Shared flat config. Type-aware rules catch the mistakes that matter in an async server
 * (floating promises, misused promises in handlers) that a syntax-only lint cannot see.
 */
export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', '**/.turbo/**', '**/*.config.*'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true },
    },
    rules: {
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/consistent-type-definitions': ['error', 'type'],
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/require-await': 'off',
      'no-restricted-properties': [
        'error',
        { object: 'process', property: 'env', message: 'Read configuration from src/env.ts only.' },
      ],
    },
  },
  {
    // The one reader of the environment (house style).
    files: ['**/src/env.ts'],
    rules: { 'no-restricted-properties': 'off' },
  },
  {
    // Kysely's convention: migrations are frozen in time, so they see the schema as `any`.
    files: ['**/migrations/**/*.ts', '**/migrate.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    // Tests choose their backend from MVP_TEST_* variables.
    files: ['**/*.test.ts', 'test/**/*.ts'],
    rules: {
      'no-restricted-properties': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
    },
  },
);
