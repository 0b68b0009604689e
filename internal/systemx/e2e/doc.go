// Package e2e holds the end-to-end tests of the System-X example: the real
// scripts/system-x.js, run by the scripting stage inside the engine, against
// the fake System-X of package systemx, with the results stored in a real
// bbolt store. It has no code of its own; the tests are in package e2e_test.
//
// They show what issue 3 asks of System-X: the first run reads and stores
// the entities; the next sends the ETag, gets a 304, re-emits the cached
// entities and writes nothing; changed upstream data changes the catalog;
// a 500, a timeout or garbage records an error on the location and keeps
// the last good entities; and pipelines/system-x.hcl ingests the offline
// example as `make run` does.
package e2e
