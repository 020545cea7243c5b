import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import { ERRORS, errorBody, statusOf, refuse, type ErrorCode } from '../src/errors.js'

/** Rows `| E10xx | status | text |` of the first table after a heading line. */
function errorRows(markdown: string, heading: RegExp): Array<{ code: string; status: string; text: string }> {
  const from = markdown.search(heading)
  assert.ok(from !== -1, `no heading ${heading}`)
  return [...markdown.slice(from).matchAll(/^\| (E1\d{3}) \| ([\d /]+) \| (.+?) \|$/gm)]
    .map((m) => ({ code: m[1]!, status: m[2]!.trim(), text: m[3]!.trim() }))
    .filter((row, i, all) => all.findIndex((r) => r.code === row.code) === i)
}

test('the error table, the README and the contract list the same codes, statuses and messages', () => {
  const readme = errorRows(readFileSync('README.md', 'utf8'), /^## Errors$/m)
  assert.deepEqual(
    readme.map((r) => r.code).sort(),
    Object.keys(ERRORS).sort(),
    'README and ERRORS list the same codes',
  )
  for (const row of readme) {
    const e = ERRORS[row.code as ErrorCode]
    assert.equal(Number(row.status), e.status, `${row.code} status`)
    assert.equal(row.text, e.message, `${row.code} message`)
  }
  const contractFile = '../shared/CONTRACT.md'
  if (!existsSync(contractFile)) return // a clone without shared/ beside it: the README check above still ran
  const contract = errorRows(readFileSync(contractFile, 'utf8'), /^## 6\. Errors$/m)
  assert.deepEqual(
    contract.map((r) => r.code).sort(),
    Object.keys(ERRORS).sort(),
    'CONTRACT and ERRORS list the same codes',
  )
  for (const row of contract)
    assert.ok(
      row.status
        .split(' / ')
        .map(Number)
        .includes(ERRORS[row.code as ErrorCode].status),
      `${row.code}: contract says ${row.status}`,
    )
})

test('a refusal body is the contract shape; statuses can be overridden only where the contract has two', () => {
  assert.deepEqual(errorBody(refuse('E1004')), { status: false, code: 'E1004', message: 'Access denied' })
  assert.equal(statusOf(refuse('E1032', { status: 504 })), 504)
  assert.equal(statusOf(refuse('E1000')), 401)
})
