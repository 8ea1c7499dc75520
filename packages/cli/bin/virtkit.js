#!/usr/bin/env node
// The virtkit command; the code is in src/main.ts (built to dist/main.js).
import { main } from '../dist/main.js';

process.exit(await main(process.argv.slice(2)));
