/** The policy the deploy/ examples ship: anonymous reads everything, each bridge writes its own prefix. */
export const ACL = `# anonymous clients
topic read #
topic read $SYS/#

user gerrit
topic read #
topic readwrite gerrit/#
topic readwrite firehose/bridges/gerrit

user launchpad
topic readwrite launchpad/#
topic readwrite firehose/bridges/launchpad
`

export const USERS = { gerrit: 'gerrit-secret', launchpad: 'lp secret:with colon' }
