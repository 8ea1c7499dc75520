#!/usr/bin/env node
// virtkitd, the virtkit daemon; the code is in src/main.ts (built to dist/main.js).
import { main } from '../dist/main.js';

process.exit(await main(process.argv.slice(2)));
