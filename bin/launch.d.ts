// Types of launch.js for the TypeScript that uses it (scripts, bench/lib/stack.ts, tests).
export declare const ROOT: string;
export declare const STAMP: string;
export declare const RUNTIME_INPUTS: readonly string[];
export declare function changedSince(root: string, paths: readonly string[], sinceMs: number): boolean;
export declare function distIsFresh(root?: string, paths?: readonly string[]): boolean;
export declare function launch(entry: string): Promise<void>;
export declare function launchGateway(entry: string): Promise<void>;
