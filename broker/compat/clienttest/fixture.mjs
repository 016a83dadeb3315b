// The fixture written by broker/compat/clienttest_test.go: the server URL,
// credentials and expected answers.
import { readFileSync } from 'node:fs';

const path = process.env.PRESENCED_COMPAT_FIXTURE;
if (!path) {
  throw new Error('PRESENCED_COMPAT_FIXTURE is not set: run these suites through go test ./broker/compat/');
}

export const fixture = JSON.parse(readFileSync(path, 'utf8'));
