/**
 * gRPC server reflection (grpc.reflection.v1 and v1alpha) served from the
 * exact FileDescriptorProtos of `buf build` (gen/descriptors.binpb).
 *
 * Why our own: @grpc/reflection rebuilds descriptors through
 * proto-loader/protobufjs, which empties every file's `dependency` list and
 * regroups types under invented file names, so Go clients (buf curl,
 * grpcurl) cannot link them ("failed to find service named ... in schema").
 * See grpc/grpc-node#2595. Serving the compiler's own bytes, each file
 * followed by its transitive imports, is what those clients expect.
 */
import type * as grpc from "@grpc/grpc-js";
import { create, createFileRegistry, fromBinary, toBinary, type DescMessage, type Message } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema, type DescriptorProto, type EnumDescriptorProto, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { BoundedStreamWriter, DEFAULT_STREAM_STALL_MS } from "./bounded-stream.js";

/** The reflection service names this module registers, in protocol order. */
export const REFLECTION_SERVICE_NAMES = ["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"] as const;

/** gRPC status codes put in `error_response.error_code` (grpc/status.h). */
const CODE_INVALID_ARGUMENT = 3;
const CODE_NOT_FOUND = 5;

/** FileDescriptorSet.file is field 1 (google/protobuf/descriptor.proto). */
const FILE_DESCRIPTOR_SET_FILE_FIELD = 1;

/**
 * Looks up descriptor files by name, symbol and extension. Built once from a
 * serialized FileDescriptorSet; answers hold the original bytes of each
 * FileDescriptorProto (not a re-encoding), so clients see exactly what
 * `buf build` produced.
 */
export class DescriptorIndex {
  /** File name → its serialized FileDescriptorProto, as found in the set. */
  readonly #rawFiles = new Map<string, Uint8Array>();
  /** File name → names of its direct imports. */
  readonly #imports = new Map<string, readonly string[]>();
  /** Fully qualified symbol (no leading dot) → defining file name. */
  readonly #symbols = new Map<string, string>();
  /** Fully qualified message names, for all_extension_numbers_of_type. */
  readonly #messageTypes = new Set<string>();
  /** Extendee message name → extension field number → defining file name. */
  readonly #extensions = new Map<string, Map<number, string>>();
  /** File name → the file followed by its transitive imports (memoized). */
  readonly #closures = new Map<string, readonly Uint8Array[]>();
  /** The set decoded once more as a registry, to look up message schemas. */
  readonly registry: ReturnType<typeof createFileRegistry>;

  /** @param descriptorSet a serialized google.protobuf.FileDescriptorSet. */
  constructor(descriptorSet: Uint8Array) {
    const set = fromBinary(FileDescriptorSetSchema, descriptorSet);
    const raw = splitRepeatedBytes(descriptorSet, FILE_DESCRIPTOR_SET_FILE_FIELD);
    if (raw.length !== set.file.length) throw new Error("descriptor set: could not split the file list");
    set.file.forEach((file, i) => {
      this.#rawFiles.set(file.name, raw[i]!);
      this.#imports.set(file.name, file.dependency);
      this.#indexFile(file);
    });
    // Linking here fails fast on a set with missing imports, at startup.
    this.registry = createFileRegistry(set);
  }

  /** The message schema named `typeName`; throws if the set lacks it. */
  message(typeName: string): DescMessage {
    const desc = this.registry.getMessage(typeName);
    if (desc === undefined) throw new Error(`descriptor set has no message ${typeName}`);
    return desc;
  }

  /** The file named `fileName` then each transitive import once, or undefined. */
  fileWithImports(fileName: string): readonly Uint8Array[] | undefined {
    if (!this.#rawFiles.has(fileName)) return undefined;
    let files = this.#closures.get(fileName);
    if (files === undefined) {
      const seen = new Set<string>();
      const out: Uint8Array[] = [];
      const visit = (name: string): void => {
        const bytes = this.#rawFiles.get(name);
        if (seen.has(name) || bytes === undefined) return;
        seen.add(name);
        out.push(bytes);
        for (const dep of this.#imports.get(name) ?? []) visit(dep);
      };
      visit(fileName);
      files = out;
      this.#closures.set(fileName, files);
    }
    return files;
  }

  /** Name of the file defining `symbol` (with or without a leading dot). */
  fileOfSymbol(symbol: string): string | undefined {
    return this.#symbols.get(stripDot(symbol));
  }

  /** Name of the file defining extension `number` of message `extendee`. */
  fileOfExtension(extendee: string, number: number): string | undefined {
    return this.#extensions.get(stripDot(extendee))?.get(number);
  }

  /** Extension numbers of message `typeName` (sorted); undefined if no such message. */
  extensionNumbersOf(typeName: string): number[] | undefined {
    const name = stripDot(typeName);
    if (!this.#messageTypes.has(name)) return undefined;
    return [...(this.#extensions.get(name)?.keys() ?? [])].sort((a, b) => a - b);
  }

  #indexFile(file: FileDescriptorProto): void {
    const scope = file.package === "" ? "" : `${file.package}.`;
    for (const message of file.messageType) this.#indexMessage(file.name, scope + message.name, message);
    for (const e of file.enumType) this.#indexEnum(file.name, scope, e);
    for (const ext of file.extension) this.#indexExtension(file.name, scope + ext.name, ext.extendee, ext.number);
    for (const service of file.service) {
      const serviceName = scope + service.name;
      this.#symbols.set(serviceName, file.name);
      for (const method of service.method) this.#symbols.set(`${serviceName}.${method.name}`, file.name);
    }
  }

  #indexMessage(fileName: string, fullName: string, message: DescriptorProto): void {
    this.#symbols.set(fullName, fileName);
    this.#messageTypes.add(fullName);
    for (const field of message.field) this.#symbols.set(`${fullName}.${field.name}`, fileName);
    for (const oneof of message.oneofDecl) this.#symbols.set(`${fullName}.${oneof.name}`, fileName);
    for (const nested of message.nestedType) this.#indexMessage(fileName, `${fullName}.${nested.name}`, nested);
    for (const e of message.enumType) this.#indexEnum(fileName, `${fullName}.`, e);
    for (const ext of message.extension) this.#indexExtension(fileName, `${fullName}.${ext.name}`, ext.extendee, ext.number);
  }

  #indexEnum(fileName: string, scope: string, e: EnumDescriptorProto): void {
    this.#symbols.set(scope + e.name, fileName);
    for (const value of e.value) {
      // protobuf scopes enum values as siblings of their enum (C++ rules);
      // the enum-qualified spelling is accepted too, as a convenience.
      this.#symbols.set(scope + value.name, fileName);
      this.#symbols.set(`${scope}${e.name}.${value.name}`, fileName);
    }
  }

  #indexExtension(fileName: string, fullName: string, extendee: string, number: number): void {
    this.#symbols.set(fullName, fileName);
    const target = stripDot(extendee);
    let numbers = this.#extensions.get(target);
    if (numbers === undefined) this.#extensions.set(target, (numbers = new Map()));
    numbers.set(number, fileName);
  }
}

/** The oneof of ServerReflectionRequest, as @bufbuild/protobuf decodes it. */
type ReflectionRequest = Message & {
  host: string;
  messageRequest:
    | { case: "fileByFilename" | "fileContainingSymbol" | "allExtensionNumbersOfType" | "listServices"; value: string }
    | { case: "fileContainingExtension"; value: { containingType: string; extensionNumber: number } }
    | { case: undefined; value?: undefined };
};

/** The oneof of ServerReflectionResponse, as an init object for `create`. */
type ReflectionAnswer =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: readonly Uint8Array[] } }
  | { case: "allExtensionNumbersResponse"; value: { baseTypeName: string; extensionNumber: number[] } }
  | { case: "listServicesResponse"; value: { service: { name: string }[] } }
  | { case: "errorResponse"; value: { errorCode: number; errorMessage: string } };

/**
 * Answers one reflection request. Every file answer is the file followed
 * by its transitive imports; unknown names give error_response NOT_FOUND.
 */
function answer(index: DescriptorIndex, services: readonly string[], request: ReflectionRequest): ReflectionAnswer {
  const req = request.messageRequest;
  switch (req.case) {
    case "listServices":
      return { case: "listServicesResponse", value: { service: services.map((name) => ({ name })) } };
    case "fileByFilename":
      return filesAnswer(index, req.value, `file not found: ${req.value}`);
    case "fileContainingSymbol":
      return filesAnswer(index, index.fileOfSymbol(req.value), `symbol not found: ${req.value}`);
    case "fileContainingExtension": {
      const { containingType, extensionNumber } = req.value;
      const file = index.fileOfExtension(containingType, extensionNumber);
      return filesAnswer(index, file, `extension not found: ${containingType} field ${extensionNumber}`);
    }
    case "allExtensionNumbersOfType": {
      const numbers = index.extensionNumbersOf(req.value);
      if (numbers === undefined) return errorAnswer(CODE_NOT_FOUND, `type not found: ${req.value}`);
      return { case: "allExtensionNumbersResponse", value: { baseTypeName: stripDot(req.value), extensionNumber: numbers } };
    }
    default:
      return errorAnswer(CODE_INVALID_ARGUMENT, "empty reflection request: set one of the message_request fields");
  }
}

function filesAnswer(index: DescriptorIndex, fileName: string | undefined, notFound: string): ReflectionAnswer {
  const files = fileName === undefined ? undefined : index.fileWithImports(fileName);
  if (files === undefined) return errorAnswer(CODE_NOT_FOUND, notFound);
  return { case: "fileDescriptorResponse", value: { fileDescriptorProto: files } };
}

function errorAnswer(errorCode: number, errorMessage: string): ReflectionAnswer {
  return { case: "errorResponse", value: { errorCode, errorMessage } };
}

/** Options of {@link addReflection}. */
export interface ReflectionOptions {
  /** Serialized FileDescriptorSet (gen/descriptors.binpb); must contain grpc/reflection/v1 and v1alpha. */
  readonly descriptors: Uint8Array | DescriptorIndex;
  /**
   * Fully qualified names list_services reports: the services actually added
   * to the server (the reflection services themselves included by the caller).
   */
  readonly services: readonly string[];
  /** How long a stream may stay blocked on a client that does not read, ms; then it ends with RESOURCE_EXHAUSTED. */
  readonly stallMs?: number;
}

/**
 * Most answers kept for a client that does not read. Reading stops as soon
 * as the stream blocks, so only the requests grpc-js had already decoded
 * (its read buffer) can still add answers.
 */
const REFLECTION_BACKLOG = 64;

/**
 * Adds grpc.reflection.v1.ServerReflection and its v1alpha twin to `server`.
 * Both protocols have the same field numbers, so one implementation serves
 * both; messages are (de)serialized with @bufbuild/protobuf using the
 * reflection schemas from the same descriptor set, so no codegen is needed.
 * Returns the index, for callers that want to look symbols up themselves.
 */
export function addReflection(server: grpc.Server, options: ReflectionOptions): DescriptorIndex {
  const index = options.descriptors instanceof DescriptorIndex ? options.descriptors : new DescriptorIndex(options.descriptors);
  const services = [...options.services];
  const stallMs = options.stallMs ?? DEFAULT_STREAM_STALL_MS;
  for (const service of REFLECTION_SERVICE_NAMES) {
    const pkg = service.slice(0, service.lastIndexOf("."));
    const requestSchema = index.message(`${pkg}.ServerReflectionRequest`);
    const responseSchema = index.message(`${pkg}.ServerReflectionResponse`);
    const definition: grpc.ServiceDefinition = {
      serverReflectionInfo: {
        path: `/${service}/ServerReflectionInfo`,
        originalName: "ServerReflectionInfo",
        requestStream: true,
        responseStream: true,
        requestSerialize: (value: Message) => Buffer.from(toBinary(requestSchema, value)),
        requestDeserialize: (bytes: Buffer) => fromBinary(requestSchema, bytes),
        responseSerialize: (value: Message) => Buffer.from(toBinary(responseSchema, value)),
        responseDeserialize: (bytes: Buffer) => fromBinary(responseSchema, bytes),
      },
    };
    const serverReflectionInfo = (call: grpc.ServerDuplexStream<ReflectionRequest, Message>): void => {
      // One answer per request: while the client does not read, stop reading its requests.
      const out = new BoundedStreamWriter<Message>(call, {
        stallMs,
        maxBacklog: REFLECTION_BACKLOG,
        what: "ServerReflectionInfo",
        onWritable: () => call.resume(),
        onFailed: () => call.pause(),
      });
      call.on("data", (request: ReflectionRequest) => {
        const response = create(responseSchema, {
          validHost: request.host,
          originalRequest: request,
          messageResponse: answer(index, services, request),
        });
        out.send(response);
        if (out.blocked) call.pause();
      });
      call.on("end", () => out.end());
      call.once("cancelled", () => out.close());
    };
    server.addService(definition, { serverReflectionInfo });
  }
  return index;
}

/**
 * Splits the raw bytes of every occurrence of length-delimited `fieldNo` in
 * a serialized message, keeping each element's exact encoding.
 */
function splitRepeatedBytes(bytes: Uint8Array, fieldNo: number): Uint8Array[] {
  const reader = new BinaryReader(bytes);
  const out: Uint8Array[] = [];
  while (reader.pos < reader.len) {
    const [no, wireType] = reader.tag();
    if (no === fieldNo && wireType === WireType.LengthDelimited) out.push(reader.bytes());
    else reader.skip(wireType, no);
  }
  return out;
}

function stripDot(name: string): string {
  return name.startsWith(".") ? name.slice(1) : name;
}
