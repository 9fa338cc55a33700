// Types of launch.js for the TypeScript that uses it (bench/lib/stack.ts, tests).
export declare const ROOT: string;
export declare const STAMP: string;
export declare const RUNTIME_INPUTS: readonly string[];
export declare const GATEWAY_SEMI_SPACE_MIB: number;
export declare const GATEWAY_HEAP_GROWING_PERCENT: number;
export declare function changedSince(root: string, paths: readonly string[], sinceMs: number): boolean;
export declare function distIsFresh(root?: string, paths?: readonly string[]): boolean;
export declare function gatewayNodeFlags(env?: NodeJS.ProcessEnv, execArgv?: readonly string[]): string[];
export declare function tuneGatewayHeap(): void;
export declare function launch(entry: string): Promise<void>;
