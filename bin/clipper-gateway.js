#!/usr/bin/env node
// dist/ when built and fresh, else the TypeScript through tsx (launch.js).
import { launch, tuneGatewayHeap } from "./launch.js";
tuneGatewayHeap();
await launch("gateway/main");
