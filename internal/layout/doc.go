// Package layout holds the test that keeps the module's shape: the import
// rules of the design (protocol ← membership ← presence ← broker ← cmd,
// test helpers only in tests) and a package doc in every package.
package layout
