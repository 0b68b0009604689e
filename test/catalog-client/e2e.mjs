// End-to-end test of the catalog API with Backstage's own
// @backstage/catalog-client, run by api/catalogclient_test.go against a
// real server over the fixture catalog of api/fixture_test.go:
//
//   node e2e.mjs <base URL> <absolute path of extra/extra.yaml>
//
// with CATALOG_TOKEN set to the server's bearer token. Each step prints
// "ok - <step>"; the first failure prints "not ok - <step>: <reason>" and
// exits with status 1.
import assert from 'node:assert/strict';
import { CatalogClient, CATALOG_FILTER_EXISTS } from '@backstage/catalog-client';

const [base, extraFile] = process.argv.slice(2);
if (!base || !extraFile) {
  console.error('usage: node e2e.mjs <base URL> <absolute path of extra/extra.yaml>');
  process.exit(2);
}
const token = process.env.CATALOG_TOKEN || undefined;
const auth = token ? { token } : undefined;

// A hung request must not hang the test.
setTimeout(() => {
  console.error('not ok - timeout: the run took more than 50 s');
  process.exit(1);
}, 50_000).unref();

const client = new CatalogClient({
  discoveryApi: { getBaseUrl: async () => `${base}/api/catalog` },
  fetchApi: { fetch },
});

let current = '';
async function step(name, fn) {
  current = name;
  await fn();
  console.log(`ok - ${name}`);
}

// expectError asserts that fn rejects with the client's ResponseError for
// the given status and Backstage error name.
async function expectError(fn, status, errorName) {
  let err;
  try {
    await fn();
  } catch (e) {
    err = e;
  }
  assert.ok(err, `expected a ${status} ${errorName}, got success`);
  assert.equal(err.name, 'ResponseError', `expected a ResponseError, got ${err.name}: ${err.message}`);
  assert.equal(err.response?.status, status, `status: ${err.message}`);
  assert.equal(err.body?.error?.name, errorName, `error name in ${JSON.stringify(err.body)}`);
  assert.equal(err.body?.response?.statusCode, status);
  assert.ok(err.body?.request?.method && err.body?.request?.url, `request in ${JSON.stringify(err.body)}`);
  return err;
}

async function eventually(what, fn, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise(r => setTimeout(r, 50));
  }
}

const refOf = e =>
  `${e.kind}:${e.metadata.namespace ?? 'default'}/${e.metadata.name}`.toLowerCase();
const names = items => items.map(e => e.metadata.name);

const FIXTURE_REFS = [
  'component:default/billing',
  'component:default/orders',
  'component:default/web',
  'component:ops/deployer',
  'group:default/pumps',
  'group:default/rockets',
  'location:default/more',
];

async function main() {
  await step('getEntities: all entities', async () => {
    const { items } = await client.getEntities();
    const refs = items.map(refOf).sort();
    // The fixture plus the generated root Location.
    assert.equal(refs.length, FIXTURE_REFS.length + 1, `refs ${refs}`);
    for (const r of FIXTURE_REFS) assert.ok(refs.includes(r), `${r} missing from ${refs}`);
    assert.ok(refs.some(r => r.startsWith('location:default/generated-')), `no generated location in ${refs}`);
    for (const e of items) assert.ok(e.metadata.uid && e.metadata.etag, `${refOf(e)} lacks uid/etag`);
  });

  await step('getEntities: filter, fields, order, limit', async () => {
    const { items } = await client.getEntities({
      filter: { kind: 'Component' },
      fields: ['kind', 'metadata.name'],
      order: { field: 'metadata.name', order: 'asc' },
      limit: 3,
    });
    assert.deepEqual(names(items), ['billing', 'deployer', 'orders']);
    assert.deepEqual(Object.keys(items[0]).sort(), ['kind', 'metadata']);
    assert.deepEqual(Object.keys(items[0].metadata), ['name']);

    // OR'ed filter sets, CATALOG_FILTER_EXISTS-style existence and
    // case-insensitive values.
    const { items: mixed } = await client.getEntities({
      filter: [{ kind: 'group', 'spec.type': 'TEAM' }, { kind: 'component', 'metadata.tags': 'java' }],
    });
    assert.deepEqual(mixed.map(refOf).sort(), ['component:default/orders', 'group:default/pumps', 'group:default/rockets']);
    const { items: described } = await client.getEntities({ filter: { 'metadata.description': CATALOG_FILTER_EXISTS } });
    assert.deepEqual(described.map(refOf), ['component:default/web']);
  });

  await step('getEntitiesByRefs', async () => {
    const { items } = await client.getEntitiesByRefs({
      entityRefs: ['component:default/orders', 'component:default/nope', 'group:default/rockets', 'component:ops/deployer'],
      fields: ['kind', 'metadata.name', 'metadata.namespace'],
    });
    assert.equal(items.length, 4);
    assert.equal(items[0]?.metadata.name, 'orders');
    assert.equal(items[1], undefined);
    assert.equal(items[2]?.kind, 'Group');
    assert.equal(items[3]?.metadata.namespace, 'ops');

    // With a filter: refs that do not match come back empty.
    const filtered = await client.getEntitiesByRefs({
      entityRefs: ['component:default/orders', 'group:default/rockets'],
      filter: { kind: 'group' },
    });
    assert.equal(filtered.items[0], undefined);
    assert.equal(filtered.items[1]?.metadata.name, 'rockets');
  });

  await step('queryEntities: cursor paging to the end and back (GET)', async () => {
    const seen = [];
    let res = await client.queryEntities({
      filter: { kind: 'component' },
      orderFields: { field: 'metadata.name', order: 'asc' },
      limit: 1,
    });
    const pages = [res];
    assert.equal(res.totalItems, 4);
    assert.equal(res.pageInfo.prevCursor, undefined);
    seen.push(...names(res.items));
    while (res.pageInfo.nextCursor) {
      assert.ok(pages.length < 10, 'paging does not end');
      // As in Backstage, the cursor does not carry the page size.
      res = await client.queryEntities({ cursor: res.pageInfo.nextCursor, limit: 1 });
      assert.equal(res.totalItems, 4, 'totalItems is carried by the cursor');
      assert.equal(res.items.length, 1);
      pages.push(res);
      seen.push(...names(res.items));
    }
    assert.deepEqual(seen, ['billing', 'deployer', 'orders', 'web']);
    // The last page's prevCursor leads back to the page before it.
    assert.equal(pages.length, 4);
    const back = await client.queryEntities({ cursor: res.pageInfo.prevCursor, limit: 1 });
    assert.deepEqual(names(back.items), ['orders']);
    // Without a limit a cursor page has the default size (200): the rest.
    const rest = await client.queryEntities({ cursor: pages[0].pageInfo.nextCursor });
    assert.deepEqual(names(rest.items), ['deployer', 'orders', 'web']);
    assert.equal(rest.pageInfo.nextCursor, undefined);

    // Full-text filter and descending order.
    const ft = await client.queryEntities({
      filter: { kind: 'component' },
      fullTextFilter: { term: 'ER', fields: ['metadata.name'] },
      orderFields: [{ field: 'metadata.name', order: 'desc' }],
    });
    assert.deepEqual(names(ft.items), ['orders', 'deployer']);
    assert.equal(ft.totalItems, 2);
  });

  await step('queryEntities: predicate query with cursor paging (POST)', async () => {
    const seen = [];
    let res = await client.queryEntities({
      query: { kind: 'component', 'spec.lifecycle': { $in: ['production'] } },
      orderFields: { field: 'metadata.name', order: 'asc' },
      limit: 2,
    });
    assert.equal(res.totalItems, 3);
    seen.push(...names(res.items));
    let pages = 1;
    while (res.pageInfo.nextCursor) {
      assert.ok(++pages < 10, 'paging does not end');
      res = await client.queryEntities({ cursor: res.pageInfo.nextCursor, limit: 2 });
      seen.push(...names(res.items));
    }
    assert.deepEqual(seen, ['billing', 'deployer', 'orders']);
    assert.equal(pages, 2);
  });

  await step('streamEntities', async () => {
    const seen = [];
    for await (const page of client.streamEntities({ filter: { kind: 'group' }, pageSize: 1 })) {
      seen.push(...page.map(refOf));
    }
    assert.deepEqual(seen.sort(), ['group:default/pumps', 'group:default/rockets']);
  });

  await step('getEntityByRef', async () => {
    const orders = await client.getEntityByRef('component:default/orders');
    assert.equal(orders?.metadata.title, 'Orders Service');
    assert.equal(orders?.spec?.owner, 'rockets');
    assert.ok(
      orders.relations.some(r => r.type === 'ownedBy' && r.targetRef === 'group:default/rockets'),
      `relations ${JSON.stringify(orders.relations)}`,
    );
    // Case-insensitive, with a compound-ref object too.
    const deployer = await client.getEntityByRef({ kind: 'Component', namespace: 'OPS', name: 'Deployer' });
    assert.equal(deployer?.metadata.name, 'deployer');
    assert.equal(await client.getEntityByRef('component:default/nope'), undefined);
  });

  await step('getEntityAncestors', async () => {
    const res = await client.getEntityAncestors({ entityRef: 'component:default/billing' });
    assert.equal(res.rootEntityRef, 'component:default/billing');
    const refs = res.items.map(i => refOf(i.entity));
    assert.ok(refs.includes('location:default/more'), `ancestry ${refs}`);
  });

  await step('getEntityFacets (GET and POST)', async () => {
    const { facets } = await client.getEntityFacets({ facets: ['kind', 'spec.type'], filter: { kind: 'component' } });
    assert.deepEqual(facets.kind, [{ value: 'Component', count: 4 }]);
    assert.deepEqual(facets['spec.type'], [
      { value: 'service', count: 3 },
      { value: 'website', count: 1 },
    ]);
    const byPredicate = await client.getEntityFacets({ facets: ['spec.owner'], query: { kind: { $in: ['component'] }, 'metadata.namespace': 'default' } });
    assert.deepEqual(byPredicate.facets['spec.owner'], [
      { value: 'group:default/rockets', count: 1 },
      { value: 'pumps', count: 1 },
      { value: 'rockets', count: 1 },
    ]);
  });

  let locationId;
  const extraTarget = extraFile;
  await step('addLocation: token required', async () => {
    await expectError(() => client.addLocation({ type: 'file', target: extraTarget }), 401, 'AuthenticationError');
  });

  await step('addLocation: dryRun', async () => {
    const res = await client.addLocation({ type: 'file', target: extraTarget, dryRun: true }, auth);
    assert.equal(res.exists, false);
    assert.equal(res.location.type, 'file');
    assert.equal(res.location.target, extraTarget);
    const refs = res.entities.map(refOf);
    assert.ok(refs.includes('component:default/extra'), `dry-run entities ${refs}`);
    // Nothing was stored.
    assert.equal(await client.getEntityByRef('component:default/extra'), undefined);
    assert.equal(await client.getLocationByRef(`file:${extraTarget}`), undefined);
  });

  await step('addLocation: register', async () => {
    const res = await client.addLocation({ type: 'file', target: extraTarget }, auth);
    assert.ok(res.location.id, 'no location id');
    assert.equal(res.location.type, 'file');
    assert.equal(res.location.target, extraTarget);
    assert.ok(Array.isArray(res.entities));
    locationId = res.location.id;
    // The running ingestion loop picks it up.
    const extra = await eventually('component:default/extra', () => client.getEntityByRef('component:default/extra'));
    assert.equal(extra.metadata.annotations['backstage.io/managed-by-origin-location'], `file:${extraTarget}`);
    await expectError(() => client.addLocation({ type: 'file', target: extraTarget }, auth), 409, 'ConflictError');
    // A dry run of a registered location says it exists.
    const again = await client.addLocation({ type: 'file', target: extraTarget, dryRun: true }, auth);
    assert.equal(again.exists, true);
    // Types the pipeline does not read are refused.
    await expectError(() => client.addLocation({ type: 'github', target: 'https://x/y' }, auth), 400, 'InputError');
    // So are files outside the allowed folders.
    await expectError(() => client.addLocation({ type: 'file', target: '/etc/passwd' }, auth), 403, 'NotAllowedError');
  });

  await step('getLocationById, getLocationByRef, getLocationByEntity, getLocations, queryLocations', async () => {
    const loc = await client.getLocationById(locationId);
    assert.deepEqual({ id: loc.id, type: loc.type, target: loc.target }, { id: locationId, type: 'file', target: extraTarget });
    assert.equal(await client.getLocationById('00000000-0000-0000-0000-000000000000'), undefined);
    assert.equal((await client.getLocationByRef(`file:${extraTarget}`))?.id, locationId);
    assert.equal((await client.getLocationByEntity('component:default/extra'))?.id, locationId);
    const { items } = await client.getLocations();
    assert.ok(items.some(l => l.id === locationId), `locations ${JSON.stringify(items)}`);
    const q = await client.queryLocations({ limit: 10, query: { type: 'file' } });
    assert.ok(q.items.some(l => l.id === locationId));
    assert.equal(q.totalItems, q.items.length);
  });

  await step('updateLocation and analyzeLocation: documented 501s', async () => {
    // This server does not update locations in place nor analyze
    // repositories (api/doc.go); the client surfaces Backstage's error.
    await expectError(() => client.updateLocation(locationId, { type: 'file', target: extraTarget }, auth), 501, 'NotImplementedError');
    await expectError(
      () => client.analyzeLocation({ location: { type: 'url', target: 'https://example.com/repo' } }, auth),
      501,
      'NotImplementedError',
    );
  });

  await step('refreshEntity', async () => {
    await client.refreshEntity('component:default/extra', auth);
    await expectError(() => client.refreshEntity('component:default/nope', auth), 404, 'NotFoundError');
    await expectError(() => client.refreshEntity('component:default/extra'), 401, 'AuthenticationError');
  });

  await step('removeLocationById', async () => {
    await expectError(() => client.removeLocationById(locationId), 401, 'AuthenticationError');
    await client.removeLocationById(locationId, auth);
    assert.equal(await client.getLocationById(locationId), undefined);
    await eventually('component:default/extra to go', async () =>
      (await client.getEntityByRef('component:default/extra')) === undefined);
    await expectError(() => client.removeLocationById(locationId, auth), 404, 'NotFoundError');
  });

  await step('removeEntityByUid', async () => {
    const web = await client.getEntityByRef('component:default/web');
    await expectError(() => client.removeEntityByUid(web.metadata.uid), 401, 'AuthenticationError');
    await client.removeEntityByUid(web.metadata.uid, auth);
    // Unknown uids are fine too, as in Backstage.
    await client.removeEntityByUid('00000000-0000-0000-0000-000000000000', auth);
  });

  await step('validateEntity', async () => {
    const entity = {
      apiVersion: 'backstage.io/v1alpha1',
      kind: 'Component',
      metadata: { name: 'fresh' },
      spec: { type: 'service', lifecycle: 'production', owner: 'rockets' },
    };
    assert.deepEqual(await client.validateEntity(entity, 'url:https://example.com/catalog-info.yaml'), { valid: true });
    const bad = await client.validateEntity(
      { ...entity, spec: { type: 'service', owner: 'rockets' } },
      'url:https://example.com/catalog-info.yaml',
    );
    assert.equal(bad.valid, false);
    assert.ok(bad.errors.length > 0 && bad.errors.every(e => e.name && e.message), JSON.stringify(bad.errors));
    assert.ok(bad.errors.some(e => e.message.includes('lifecycle')), JSON.stringify(bad.errors));
    const wrongLocation = await client.validateEntity(entity, 'file:/tmp/catalog-info.yaml');
    assert.equal(wrongLocation.valid, false);
  });
}

try {
  await main();
  console.log('all catalog-client checks passed');
} catch (e) {
  console.error(`not ok - ${current}: ${e?.stack ?? e}`);
  process.exit(1);
}
