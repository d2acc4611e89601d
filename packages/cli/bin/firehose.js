#!/usr/bin/env node
import { setFlagsFromString } from 'node:v8'

// Before anything is allocated: V8's memory-saving heap policy. A broker holds thousands of
// small long-lived connection objects; with the default policy the garbage of connection
// set-up fragments the old generation and idle subscribers cost about twice the memory.
setFlagsFromString('--optimize-for-size')
const { main } = await import('../dist/main.js')

process.exitCode = await main(process.argv.slice(2))
