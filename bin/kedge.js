#!/usr/bin/env node
// `npm exec kedge -- <command>`: runs the TypeScript sources directly (Node >= 24 strips types).
import '../src/cli/main.ts';
