import { startUpstream } from './helpers.js'

/**
 * A MediaWiki-shaped upstream: api.php answers opensearch / query / edit, rest.php a page.
 * It records every request; what matters in the tests is what it received.
 */
export function startMediaWikiUpstream() {
  return startUpstream((req, res, body) => {
    const url = new URL(req.url!, 'http://wiki.test')
    res.setHeader('content-type', 'application/json')
    if (url.pathname.endsWith('/api.php')) {
      const form = req.headers['content-type']?.startsWith('application/x-www-form-urlencoded')
        ? new URLSearchParams(body.toString())
        : null
      const action = form?.get('action') ?? url.searchParams.get('action') ?? 'help'
      if (action === 'opensearch')
        return res.end(JSON.stringify(['Main', ['Main Page'], [''], ['http://wiki.test/wiki/Main_Page']]))
      return res.end(JSON.stringify({ action, user: req.headers['x-auth-user'] ?? null }))
    }
    if (url.pathname.includes('/rest.php/')) return res.end(JSON.stringify({ title: 'Main Page', source: 'Hello' }))
    res.end(JSON.stringify({ path: url.pathname }))
  })
}
