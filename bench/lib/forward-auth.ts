// Forward-auth behind a real nginx (issue 18): nginx `auth_request` asks an auth service about
// every request, then proxies it to the upstream. Case (16) asks bench/auth-floor.ts (answers
// 200, decides nothing: the floor of any remote auth service), case (17) asks keygate's
// /_keygate/auth with a Bearer token. Same nginx config, same upstream, same request.
import { freePort } from './net.js'
import type { ProcessSet, Proc } from './procs.js'
import { startNginx, startScript, type NginxInfo, type Upstream } from './upstream.js'

/**
 * The shape of examples/nginx/keygate.conf.template: an internal auth location with
 * X-Original-URI / -Method, the identity headers taken from the answer (auth_request_set) and
 * sent upstream, keep-alive to both.
 */
export async function startAuthRequestNginx(
  procs: ProcessSet,
  dir: string,
  nginx: NginxInfo,
  upstream: Upstream,
  name: string,
  authOrigin: string,
  authPath: string,
): Promise<{ proc: Proc; origin: string }> {
  const port = await freePort()
  const hostPort = (origin: string) => origin.replace('http://', '')
  const proc = await startNginx(
    procs,
    dir,
    name,
    nginx,
    'sut',
    `  upstream auth_service {
    server ${hostPort(authOrigin)};
    keepalive 64;
    keepalive_requests 10000000;
  }
  upstream protected_app {
    server ${hostPort(upstream.origin)};
    keepalive 64;
    keepalive_requests 10000000;
  }
  server {
    listen 127.0.0.1:${port};
    location = /_auth {
      internal;
      proxy_pass http://auth_service${authPath};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }
    location / {
      auth_request /_auth;
      auth_request_set $auth_user $upstream_http_x_auth_user;
      auth_request_set $auth_groups $upstream_http_x_auth_groups;
      auth_request_set $auth_scheme $upstream_http_x_auth_scheme;
      proxy_pass http://protected_app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "";
      proxy_set_header X-Auth-User $auth_user;
      proxy_set_header X-Auth-Groups $auth_groups;
      proxy_set_header X-Auth-Scheme $auth_scheme;
    }
  }`,
    port,
  )
  return { proc, origin: `http://127.0.0.1:${port}` }
}

/** bench/auth-floor.ts on the system-under-test CPU, beside its nginx. */
export async function startAuthFloor(
  procs: ProcessSet,
  dir: string,
  root: string,
  nodeArgs: readonly string[] = [],
): Promise<{ proc: Proc; origin: string }> {
  return startScript(procs, { dir, root, script: 'auth-floor', role: 'sut', nodeArgs })
}
