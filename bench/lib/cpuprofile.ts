import { relative } from 'node:path'

/** The parts of V8's .cpuprofile (what `node --cpu-prof` writes) that self time needs. */
export interface CpuProfile {
  readonly nodes: ReadonlyArray<{
    id: number
    callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number }
    children?: number[]
  }>
  readonly startTime: number
  readonly endTime: number
  readonly samples: readonly number[]
  readonly timeDeltas: readonly number[]
}

export interface FrameTime {
  readonly frame: string
  readonly selfMs: number
  /** share of the non-idle samples in the window */
  readonly percent: number
}

export interface ProfileSummary {
  readonly windowMs: number
  readonly busyMs: number
  readonly idleMs: number
  readonly frames: readonly FrameTime[]
  /** the same self time grouped by file (or package), which shows where a cost lives */
  readonly files: readonly FrameTime[]
  /** keygate's own functions (src/) by total time, callees included: which stage costs what */
  readonly ownTotals: readonly FrameTime[]
}

/** node_modules/undici/lib/x.js → undici/lib/x.js; file:///repo/src/a.ts → src/a.ts */
function shortUrl(url: string, root: string): string {
  if (!url) return ''
  const path = url.startsWith('file://') ? decodeURIComponent(new URL(url).pathname) : url
  const nm = path.lastIndexOf('/node_modules/')
  if (nm >= 0) return path.slice(nm + '/node_modules/'.length)
  return path.startsWith('/') ? relative(root, path) : path
}

/** our own files stay files; a package's files are summed per package, Node's own per 'node:' */
function fileGroup(file: string, functionName: string): string {
  if (!file) return functionName // (garbage collector), (program)
  if (file.startsWith('node:')) return 'node: (Node.js internals)'
  if (file.startsWith('wasm:')) return 'wasm (llhttp, the HTTP parser undici uses)'
  if (file.startsWith('src/') || file.startsWith('bench/') || file.startsWith('dist/')) return file
  const parts = file.split('/')
  return `${parts.slice(0, file.startsWith('@') ? 2 : 1).join('/')} (package)`
}

/**
 * Self time per frame over the samples taken in [fromUs, toUs] after the profile started
 * (so start-up and tsx's compilation do not crowd out the request path). Each sample is
 * charged the interval up to the next one, as Chrome DevTools does.
 */
export function summarize(
  profile: CpuProfile,
  root: string,
  fromUs: number,
  toUs: number,
  top: number,
): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const parentOf = new Map<number, number>()
  for (const n of profile.nodes) for (const c of n.children ?? []) parentOf.set(c, n.id)
  const label = (callFrame: CpuProfile['nodes'][number]['callFrame']): { frame: string; file: string } => {
    const file = shortUrl(callFrame.url, root)
    const name = callFrame.functionName || '(anonymous)'
    return { frame: file ? `${name} ${file}:${callFrame.lineNumber + 1}` : name, file }
  }
  const totalByOwnFrame = new Map<string, number>()
  const selfByFrame = new Map<string, number>()
  const selfByFile = new Map<string, number>()
  let busy = 0
  let idle = 0
  let t = 0
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i] ?? 0
    const dt = profile.timeDeltas[i + 1] ?? 0
    if (t < fromUs || t > toUs) continue
    const node = byId.get(profile.samples[i]!)
    if (!node) continue
    const { functionName } = node.callFrame
    if (functionName === '(idle)') {
      idle += dt
      continue
    }
    busy += dt
    const { frame, file } = label(node.callFrame)
    selfByFrame.set(frame, (selfByFrame.get(frame) ?? 0) + dt)
    const group = fileGroup(file, functionName)
    selfByFile.set(group, (selfByFile.get(group) ?? 0) + dt)
    // Walk up the stack; a recursive frame counts once per sample.
    const seen = new Set<string>()
    for (let id: number | undefined = node.id; id !== undefined; id = parentOf.get(id)) {
      const up = byId.get(id)
      if (!up) break
      const l = label(up.callFrame)
      if (!l.file.startsWith('src/') && !l.file.startsWith('dist/')) continue
      if (seen.has(l.frame)) continue
      seen.add(l.frame)
      totalByOwnFrame.set(l.frame, (totalByOwnFrame.get(l.frame) ?? 0) + dt)
    }
  }
  const rank = (m: Map<string, number>): FrameTime[] =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([frame, us]) => ({ frame, selfMs: us / 1000, percent: busy > 0 ? (100 * us) / busy : 0 }))
  return {
    windowMs: (toUs - fromUs) / 1000,
    busyMs: busy / 1000,
    idleMs: idle / 1000,
    frames: rank(selfByFrame),
    files: rank(selfByFile),
    ownTotals: rank(totalByOwnFrame),
  }
}
