import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, readdirSync, statSync } from 'node:fs'
import { join, relative, dirname, normalize } from 'node:path'

// The dependency direction of STYLE.md §2: a module never imports from a higher layer,
// and a pipeline stage never imports another stage (only pipeline/index composes them).
const LAYERS: Array<[number, RegExp]> = [
  [0, /^(errors|clock|log|observe|principal|util\/.*|http\/.*|config\/schema)$/],
  [
    1,
    /^(config\/load|config\/compile|config\/warnings|store\/.*|tokens\/.*|identity\/.*|mediawiki\/.*|upstream\/.*|metrics\/.*)$/,
  ],
  [2, /^(auth\/.*|pipeline\/(?!index$).*|signin\/.*)$/],
  [3, /^(pipeline\/index|endpoints\/.*|suffit\/.*)$/],
  [4, /^(gateway\/.*|server|cli|cluster|audit|admin\/.*)$/],
]
const STAGES = /^pipeline\/(normalize|client-ip|authenticate|authorize|action-params|identity|forward|rate-limit)$/

const files = (dir: string): string[] =>
  readdirSync(dir).flatMap((f) => {
    const p = join(dir, f)
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : []
  })
const moduleOf = (file: string) => relative('src', file).replace(/\.ts$/, '')
const layerOf = (mod: string): number => {
  const hit = LAYERS.find(([, re]) => re.test(mod))
  assert.ok(hit, `${mod} is in no layer: add it to the table in test/layers.test.ts`)
  return hit[0]
}

test('no module imports from a higher layer, and no stage imports another stage', () => {
  const problems: string[] = []
  for (const file of files('src')) {
    const mod = moduleOf(file)
    const imports = [...readFileSync(file, 'utf8').matchAll(/^import .* from '(\.[^']+)'/gm)].map((m) => m[1]!)
    for (const spec of imports) {
      const target = moduleOf(normalize(join(dirname(file), spec.replace(/\.js$/, '.ts'))))
      if (layerOf(target) > layerOf(mod))
        problems.push(`${mod} (layer ${layerOf(mod)}) imports ${target} (layer ${layerOf(target)})`)
      if (STAGES.test(mod) && STAGES.test(target)) problems.push(`stage ${mod} imports stage ${target}`)
    }
  }
  assert.deepEqual(problems, [])
})
