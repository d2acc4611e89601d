import neostandard from 'neostandard'

// neostandard (standard's successor for ESLint 9), with its TypeScript rules; `npm test` runs it.
export default [
  ...neostandard({
    ts: true,
    ignores: ['**/dist/**', '**/node_modules/**', 'bench/.build/**', 'certs/dev/**', 'packages/ansible-bridge/plugin/**']
  }),
  {
    // the viewer's page (packages/broker/viewer/): ES modules in a browser, beside mqtt.js's bundle
    files: ['packages/broker/viewer/**/*.js'],
    languageOptions: { globals: { location: 'readonly', requestAnimationFrame: 'readonly' } }
  }
]
