// libmime (mailparser's own MIME decoder) ships no types; this is the one function used.
// It is CommonJS exporting an instance, so it is imported as a default export.
declare module 'libmime' {
  const libmime: {
    /** Decodes RFC 2047 encoded-words (`=?utf-8?q?...?=`) in a header value. */
    decodeWords: (value: string) => string
  }
  export default libmime
}
