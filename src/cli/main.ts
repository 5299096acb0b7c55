#!/usr/bin/env node
// The CLI's entry as an ES module. dist/cli/hostpull (scripts/launcher.sh) starts the same code
// from a V8 startup snapshot when it can (snapshot-main.ts), and this file when it cannot.
import { ignoreClosedPipes, main } from './cli-main.js';

ignoreClosedPipes();
await main(process.argv);
