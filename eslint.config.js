// Imports flow one way: cni <- ipam <- store ; kernel ; attach ; programs (bin, lab) on top.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const layer = (dir, forbidden) => ({
  files: [`src/${dir}/**/*.ts`],
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: forbidden.map((f) => ({
          group: [`**/${f}/**`, `../${f}/*`],
          message: `${dir}/ must not import ${f}/`,
        })),
      },
    ],
  },
});

export default tseslint.config(
  {
    ignores: [
      'dist/**',
      'node_modules/**',
      '.cache/**',
      'test/vm/out/**',
      'test/k8s/vitest.config.ts',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
    },
  },
  layer('cni', ['ipam', 'store', 'kernel', 'attach', 'bin', 'lab']),
  layer('ipam', ['kernel', 'attach', 'bin', 'lab']),
  layer('store', ['kernel', 'attach', 'bin', 'lab']),
  layer('kernel', ['ipam', 'store', 'attach', 'bin', 'lab']),
  layer('attach', ['bin', 'lab', 'agent', 'controller']),
  layer('k8s', ['kernel', 'attach', 'bin', 'lab', 'controller', 'agent']),
  layer('controller', ['kernel', 'attach', 'bin', 'lab', 'agent']),
  layer('agent', ['bin', 'lab', 'controller']),
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
  },
);
