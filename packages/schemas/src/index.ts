export { ENVELOPE_SCHEMAS, TOPIC_SCHEMAS } from './catalogue.js'
export { Catalogue, ID_PREFIX, SCHEMA_DIR, type Verdict } from './catalogue-loader.js'
export { renderTopicsDoc } from './topics-doc.js'
