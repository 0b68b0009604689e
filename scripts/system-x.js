// System-X processor: turns the records of System-X, our in-house service
// inventory, into catalog entities.
//
// This is the example to copy when you write a processor of your own. It
// shows the three things most processors need:
//
//   1. reading a location of a custom type (`system-x`) in readLocation;
//   2. converting upstream records into Backstage entities and emitting
//      them with emit(results.entity(...));
//   3. caching what was read under the upstream's ETag, so that a refresh
//      that finds nothing new costs System-X a 304 and costs the catalog
//      nothing (no entity is rewritten).
//
// Wiring (see pipelines/system-x.hcl):
//
//   pipeline "system-x" {
//     allow_hosts = ["system-x.internal.example"]
//     location "system-x" { target = "https://system-x.internal.example" }
//     stage "system-x" {
//       script  = "../scripts/system-x.js"
//       timeout = "10s"
//       config  = { tierLabel = true }
//     }
//   }
//
// The location target is either the base URL of a System-X server (this
// script reads <target>/api/v1/services) or the path of a JSON file in the
// same format (the offline example; a relative path is resolved against the
// folder of the pipeline file by `read`).
//
// Settings, from the stage's `config = { ... }` block in HCL:
//
//   tierLabel  (bool, default false)  add the label system-x.example/tier
//                                     with the service's tier (gold, ...)
//   teams      (bool, default true)   emit a Group per System-X team; set
//                                     it to false when your groups already
//                                     come from another source (an org
//                                     chart in YAML, LDAP...), or both
//                                     sources would claim the same groups
//                                     and the catalog reports a conflict.
//
// The bindings used below (emit, results, read, cache, config, log) are
// described in scripts/README.md and typed in scripts/pipeline.d.ts.

'use strict';

// The location type this processor reads. Every other type is left to the
// other stages: readLocation returns false for them.
const LOCATION_TYPE = 'system-x';

// The one resource of the System-X API (internal/systemx/server.go
// documents it).
const SERVICES_PATH = '/api/v1/services';

// The key of our cache item. Bump the version when you change what is
// stored under it, so that an old item is never read as a new one (the
// convention of Backstage's own UrlReaderProcessor).
const CACHE_KEY = 'v1';

// Annotation that links every entity back to its System-X record.
const ID_ANNOTATION = 'system-x.example/id';
const TIER_LABEL = 'system-x.example/tier';

module.exports = {
  // name scopes this processor's cache. Keep it stable: renaming it drops
  // what is cached, and the next refresh reads everything again.
  name: 'system-x',

  // readLocation(location, optional) is called for every location a
  // Location entity names, until one stage returns true. location is
  // {type, target}; optional is true when a missing source is not an error.
  async readLocation(location, optional) {
    if (location.type !== LOCATION_TYPE) {
      return false; // not ours: let the next stage try
    }

    // The refresh key ties this location to its source, so that a refresh
    // of "system-x:<target>" re-reads it (Backstage's UrlReaderProcessor
    // emits `url:<target>` the same way). Every successful path below needs
    // it, so it is emitted once, up front.
    emit(results.refresh('system-x:' + location.target));

    const url = servicesURL(location.target);

    // The caching pattern of Backstage's "caching processing results":
    // send the ETag of what we read last time; a 304 means it is all still
    // true, and we re-emit what we cached instead of parsing anything.
    // An item without entities (written by some other version of this
    // script) is useless: ignore it, and read everything.
    let cached = cache.get(CACHE_KEY);
    if (!cached || !cached.etag || !Array.isArray(cached.entities)) {
      cached = undefined;
    }

    // read is synchronous here; `await` costs nothing and keeps the code
    // as it would be in a Backstage processor, where reads are promises.
    let res;
    try {
      res = await read(url, { etag: cached && cached.etag });
    } catch (e) {
      if (e.name === 'NotModifiedError' && cached) {
        for (const entity of cached.entities) {
          emit(results.entity(location, entity));
        }
        // Write the item again: a stage that writes nothing keeps its old
        // cache anyway, but writing it states the intent and survives any
        // change to that carry-over rule.
        cache.set(CACHE_KEY, cached);
        return true;
      }
      if (e.name === 'NotFoundError') {
        // The source does not exist. For an optional location that is
        // fine; otherwise it is reported on the location, and the entities
        // read from it before are removed (the source is gone).
        if (!optional) {
          emit(results.notFoundError(location, `System-X ${url} does not exist`));
        }
        return true;
      }
      // Anything else (a 500, a refused connection, a read cut off by the
      // stage timeout...) is rethrown: the engine records the error on the
      // location and keeps the entities and the cache of the last good
      // read, so an outage upstream never empties the catalog, and the
      // next refresh after it can still be a cheap 304.
      throw e;
    }

    const records = parse(res, url);
    const entities = convert(records);
    for (const entity of entities) {
      emit(results.entity(location, entity));
    }

    // Cache only what can be revalidated: a file has no ETag, and an item
    // without one would never be used.
    if (res.etag) {
      cache.set(CACHE_KEY, { etag: res.etag, entities: entities });
    }
    return true;
  },
};

// servicesURL is what to read for a location target: the services resource
// of a System-X base URL, or the target itself for a file.
function servicesURL(target) {
  if (!/^https?:\/\//i.test(target)) {
    return target; // a JSON file, absolute or relative to the pipeline file
  }
  const base = target.replace(/\/+$/, '');
  return base.endsWith(SERVICES_PATH) ? base : base + SERVICES_PATH;
}

// parse decodes and sanity-checks a response. A body that is not what
// System-X sends is an error (thrown, so the last good entities stay),
// never an empty catalog.
function parse(res, url) {
  let data;
  try {
    data = res.json();
  } catch (e) {
    throw new Error(`System-X ${url} answered something that is not JSON: ${e.message}`);
  }
  if (data === null || typeof data !== 'object' || !Array.isArray(data.services)) {
    throw new Error(`System-X ${url} answered JSON without a "services" list`);
  }
  return {
    services: data.services,
    teams: Array.isArray(data.teams) ? data.teams : [],
  };
}

// convert maps System-X records to entities: a Component per service, an
// API per interface a service provides and, unless config.teams is false,
// a Group per team. The relations (ownedBy, dependsOn, providesApi...) are
// not built here: the builtin-kinds stage derives them from the spec
// fields, as for any entity.
function convert(records) {
  // dependsOn in System-X names service ids; the catalog needs names.
  const nameById = new Map();
  for (const svc of records.services) {
    nameById.set(svc.id, svc.name);
  }

  const entities = [];
  for (const svc of records.services) {
    entities.push(component(svc, nameById));
    for (const api of svc.apis || []) {
      entities.push(apiEntity(api, svc));
    }
  }
  if (config.teams !== false) {
    for (const team of records.teams) {
      entities.push(group(team));
    }
  }
  return entities;
}

function component(svc, nameById) {
  const dependsOn = [];
  for (const id of svc.dependsOn || []) {
    const name = nameById.get(id);
    if (name) {
      dependsOn.push('component:' + name);
    } else {
      // Not fatal: the service is still worth listing without that edge.
      log.warn(`System-X service ${svc.id} depends on unknown service ${id}; dependency left out`);
    }
  }

  const metadata = {
    name: svc.name,
    title: svc.displayName || undefined, // undefined properties are dropped
    description: svc.description || undefined,
    tags: tags(svc.tags),
    annotations: { [ID_ANNOTATION]: svc.id },
  };
  if (svc.repo) {
    // Backstage's source-location is "url:" + a folder URL (trailing slash).
    metadata.annotations['backstage.io/source-location'] =
      'url:' + (svc.repo.endsWith('/') ? svc.repo : svc.repo + '/');
  }
  if (config.tierLabel && svc.tier) {
    metadata.labels = { [TIER_LABEL]: svc.tier };
  }

  return {
    apiVersion: 'backstage.io/v1alpha1',
    kind: 'Component',
    metadata: metadata,
    spec: {
      type: svc.kind, // service | website | library, as in Backstage
      lifecycle: svc.lifecycle,
      owner: 'group:' + svc.team,
      dependsOn: dependsOn.length ? dependsOn : undefined,
      providesApis: svc.apis && svc.apis.length ? svc.apis.map((a) => a.name) : undefined,
    },
  };
}

// An API takes its owner and lifecycle from the service that provides it.
function apiEntity(api, svc) {
  return {
    apiVersion: 'backstage.io/v1alpha1',
    kind: 'API',
    metadata: {
      name: api.name,
      description: `Provided by ${svc.displayName || svc.name} (${api.type}).`,
      annotations: { [ID_ANNOTATION]: svc.id },
    },
    spec: {
      type: api.type,
      lifecycle: svc.lifecycle,
      owner: 'group:' + svc.team,
      definition: api.spec,
    },
  };
}

// A team becomes a Group. Its members are System-X user names, which are
// not catalog users: emitting them as spec.members would point at User
// entities nobody provides, so they are left out. Users come from your
// identity source, whose Users name their groups in spec.memberOf.
function group(team) {
  return {
    apiVersion: 'backstage.io/v1alpha1',
    kind: 'Group',
    metadata: {
      name: team.id,
      title: team.name || undefined,
      annotations: { [ID_ANNOTATION]: team.id },
    },
    spec: {
      type: 'team',
      children: [],
    },
  };
}

// tags makes System-X's free-form tags valid catalog tags (lowercase
// words joined by dashes, at most 63 characters), dropping those that
// cannot be saved, so that one sloppy tag never rejects a whole service.
function tags(list) {
  const out = [];
  for (const t of list || []) {
    const tag = String(t)
      .toLowerCase()
      .replace(/[^a-z0-9:+#]+/g, '-')
      .slice(0, 63)
      .replace(/^-+|-+$/g, '');
    if (tag && !out.includes(tag)) {
      out.push(tag);
    }
  }
  return out.length ? out : undefined;
}
