#!/usr/bin/env node
// Runs the TypeScript entry point directly (tsx), so a checkout needs no build step.
import { register } from "tsx/esm/api";
register();
await import("../management/main.ts");
