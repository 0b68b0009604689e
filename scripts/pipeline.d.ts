// Type declarations for JavaScript stages (scripts run by a `stage` block
// with a `script` attribute). They describe the globals the engine installs
// and the hooks a script exports, so that editors autocomplete them and
// `// @ts-check` catches mistakes. The contract itself is explained in
// scripts/README.md.
//
// Use them from a script in this folder with:
//
//   // @ts-check
//   /// <reference path="./pipeline.d.ts" />
//
//   /** @type {pipeline.Processor} */
//   const processor = { ... };
//   module.exports = processor;
//
// (TypeScript ignores a type annotation written on `module.exports = ...`
// itself, hence the constant.)
//
// Scripts run in goja (ES2020-ish, CommonJS, no Node.js APIs). Do not
// install @types/node next to your scripts: it would declare `require`,
// `process` and friends, which scripts do not have.

declare namespace pipeline {
  /** A JSON value: what entities, the cache and config are made of. */
  type JsonValue = string | number | boolean | null | JsonValue[] | JsonObject;
  interface JsonObject {
    [key: string]: JsonValue | undefined;
  }

  /**
   * A location: a type ("url", "file", "system-x", ...) and a target whose
   * meaning the type defines. Backstage's LocationSpec.
   */
  interface LocationSpec {
    type: string;
    target: string;
    /** Only on locations you emit: whether a missing target is an error. */
    presence?: 'required' | 'optional';
  }

  /** A location as a hook receives it. */
  interface Location {
    readonly type: string;
    readonly target: string;
  }

  /** An entity ref as an object; namespace defaults to "default". */
  interface CompoundEntityRef {
    kind: string;
    namespace?: string;
    name: string;
  }

  /** An entity ref as an object, or a string such as "component:default/foo". */
  type EntityRef = CompoundEntityRef | string;

  interface EntityLink {
    url: string;
    title?: string;
    icon?: string;
    type?: string;
    [key: string]: JsonValue | undefined;
  }

  interface EntityMeta {
    name: string;
    namespace?: string;
    title?: string;
    description?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    tags?: string[];
    links?: EntityLink[];
    uid?: string;
    etag?: string;
    [key: string]: JsonValue | undefined;
  }

  /**
   * A catalog entity. Hooks receive a fresh copy as plain objects; what a
   * hook returns or emits is converted back as JSON is (undefined
   * properties are dropped; functions, Dates, NaN... are refused).
   */
  interface Entity {
    apiVersion: string;
    kind: string;
    metadata: EntityMeta;
    spec?: JsonObject;
    relations?: { type: string; targetRef: string }[];
    [key: string]: JsonValue | undefined;
  }

  interface EntityResult {
    type: 'entity';
    location: LocationSpec;
    entity: Entity;
    /** undefined: the location's ref; null: no key (any location may claim the entity). */
    locationKey?: string | null;
  }
  interface LocationResult {
    type: 'location';
    location: LocationSpec;
  }
  interface RelationResult {
    type: 'relation';
    relation: { source: EntityRef; type: string; target: EntityRef };
  }
  interface ErrorResult {
    type: 'error';
    location?: LocationSpec | string;
    /** An Error; its name InputError or NotFoundError is kept, any other becomes "Error". */
    error: Error | string;
  }
  interface RefreshResult {
    type: 'refresh';
    key: string;
  }
  /** What emit accepts: Backstage's CatalogProcessorResult. */
  type ProcessingResult = EntityResult | LocationResult | RelationResult | ErrorResult | RefreshResult;

  /** The result factories, as Backstage's processingResult / results. */
  interface ResultFactories {
    /** A child entity read from location. */
    entity(location: LocationSpec | string, entity: Entity, options?: { locationKey?: string | null }): EntityResult;
    /** A location to read next; it becomes a generated Location entity. optional=true means presence "optional". */
    location(location: LocationSpec | string, optional?: boolean): LocationResult;
    /** A relation; refs may be objects or strings ("group:team-a"). */
    relation(spec: { source: EntityRef; type: string; target: EntityRef }): RelationResult;
    /** A problem with location (error name "Error"). */
    generalError(location: LocationSpec | string, message: string): ErrorResult;
    /** Bad input at location (error name "InputError"). */
    inputError(location: LocationSpec | string, message: string): ErrorResult;
    /** location does not exist (error name "NotFoundError"). */
    notFoundError(location: LocationSpec | string, message: string): ErrorResult;
    /** A refresh key for the entity being processed, such as "url:https://...". */
    refresh(key: string): RefreshResult;
  }

  interface ReadOptions {
    /** Sent as If-None-Match; a 304 answer throws a NotModifiedError. */
    etag?: string | null;
    /** Extra request headers, such as Authorization. */
    headers?: Record<string, string>;
  }

  /** What read returns. For files, status is 200, etag is null and headers is empty. */
  interface ReadResponse {
    readonly status: number;
    readonly etag: string | null;
    /** Lowercase header names; repeated headers joined with ", ". */
    readonly headers: Readonly<Record<string, string>>;
    /** The body as a string (UTF-8). */
    readonly body: string;
    /** The URL finally read (after redirects), or the file path. */
    readonly url: string;
    /** The body. */
    text(): string;
    /** The body parsed as JSON; throws a SyntaxError when it is not JSON. */
    json<T = any>(): T;
  }

  /**
   * The stage's cache: JSON values scoped to (this stage, the entity being
   * processed), and in readLocation to the location's target too. Values
   * set in one run are what get returns in the next.
   */
  interface Cache {
    /** The value stored under key in the previous run, or undefined. */
    get<T = any>(key: string): T | undefined;
    /** Stores a JSON value for the next run; other values throw a TypeError. */
    set(key: string, value: JsonValue): void;
  }

  /** Structured log fields: keys become log attributes. */
  type LogFields = Record<string, JsonValue | undefined>;

  interface Logger {
    debug(message: string, fields?: LogFields): void;
    info(message: string, fields?: LogFields): void;
    warn(message: string, fields?: LogFields): void;
    error(message: string, fields?: LogFields): void;
  }

  interface Console {
    debug(...args: unknown[]): void;
    log(...args: unknown[]): void;
    info(...args: unknown[]): void;
    warn(...args: unknown[]): void;
    error(...args: unknown[]): void;
  }

  /** What a script exports: any subset of Backstage's processor hooks. */
  interface Processor {
    /** Names the stage (and scopes its cache); defaults to the stage's label in HCL. */
    name?: string;
    /** Backstage's spelling of name; used when name is absent. */
    getProcessorName?(): string;
    /**
     * Reads a location a Location entity names. Return true when the
     * location is yours (you read it), false to let the next stage try.
     */
    readLocation?(location: Location, optional: boolean): boolean | Promise<boolean>;
    /** Runs before validation; return the (changed) entity. */
    preProcessEntity?(entity: Entity, location: Location, originLocation: Location): Entity | Promise<Entity>;
    /**
     * true: a valid entity of a kind you know; false: not your kind; throw:
     * your kind, but invalid.
     */
    validateEntityKind?(entity: Entity): boolean | Promise<boolean>;
    /** Runs after validation; return the (changed) entity. */
    postProcessEntity?(entity: Entity, location: Location): Entity | Promise<Entity>;
    [key: string]: unknown;
  }
}

/** Emits a result of the current hook call (not available in validateEntityKind). */
declare function emit(result: pipeline.ProcessingResult): void;

/** Result factories (Backstage's deprecated name). */
declare const results: Readonly<pipeline.ResultFactories>;

/** Result factories (Backstage's current name); the same object as results. */
declare const processingResult: Readonly<pipeline.ResultFactories>;

/**
 * Reads an http(s) URL, a file:// URL, an absolute path or a path relative
 * to the pipeline file's folder, within the pipeline's allow_hosts and
 * allow_files. Synchronous. Throws NotModifiedError (304 to the etag sent),
 * NotFoundError (404/410, missing file), NotAllowedError (outside the
 * policy) or Error.
 */
declare function read(target: string, options?: pipeline.ReadOptions): pipeline.ReadResponse;

/** The stage's cache (not available in validateEntityKind). */
declare const cache: Readonly<pipeline.Cache>;

/** The stage's `config = { ... }` from HCL, deep-frozen. */
declare const config: Readonly<Record<string, any>>;

/** Logs into the engine's log, tagged with the stage and the entity or location being processed. */
declare const log: Readonly<pipeline.Logger>;

/** console.* log the same way as log.* (console.log is info). */
declare const console: Readonly<pipeline.Console>;

/** Bad input; thrown from a hook, the engine records an InputError. */
declare class InputError extends Error {
  name: 'InputError';
}
/** Something does not exist; thrown from readLocation, the entities read from the location go. */
declare class NotFoundError extends Error {
  name: 'NotFoundError';
  status?: number;
}
/** Thrown by read when the server answered 304 to the etag sent. */
declare class NotModifiedError extends Error {
  name: 'NotModifiedError';
  status: 304;
  etag: string;
}
/** Thrown by read for a target outside the pipeline's allow_files / allow_hosts. */
declare class NotAllowedError extends Error {
  name: 'NotAllowedError';
}

/** CommonJS: assign the hooks to module.exports (or to properties of exports). */
declare var module: { exports: pipeline.Processor };
declare var exports: pipeline.Processor;
