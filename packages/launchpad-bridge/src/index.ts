export { imapSchema, type ImapConfig } from './config.js'
export { MailboxSource } from './mailbox-source.js'
export { runLaunchpadBridge } from './main.js'
export { parseMail, parseTask, projectOf, type BugTask, type LaunchpadMessage, type MailVerdict } from './parse-mail.js'
