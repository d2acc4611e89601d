export { ConfigError } from './errors.js'
export { deepFreeze, formatZodIssues, parseYaml, readConfigText, validate } from './yaml-file.js'
