import neostandard from 'neostandard'

// neostandard (standard's successor for ESLint 9), with its TypeScript rules; `npm test` runs it.
export default neostandard({
  ts: true,
  ignores: ['**/dist/**', '**/node_modules/**', 'bench/.build/**', 'certs/dev/**', 'packages/ansible-bridge/plugin/**']
})
