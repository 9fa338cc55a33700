#!/usr/bin/env node
// dist/ when built and fresh, else the TypeScript through tsx (launch.js),
// with the gateway's heap flags (core/gateway-heap.ts).
import { launchGateway } from "./launch.js";
await launchGateway("gateway/main");
