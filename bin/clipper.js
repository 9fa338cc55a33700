#!/usr/bin/env node
// dist/ when built and fresh, else the TypeScript through tsx (launch.js).
import { launch } from "./launch.js";
await launch("clients/cli/clipper");
