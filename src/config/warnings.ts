import type { GatewayConfig } from './schema.js'

export interface ConfigWarning {
  readonly path: string
  readonly message: string
}

/** Valid settings that weaken a guarantee: check-config prints them and the gateway logs them at start. */
export function configWarnings(config: GatewayConfig): ConfigWarning[] {
  const warnings: ConfigWarning[] = []
  if (config.forwardAuth.actionPostBodies === 'queryOnly')
    warnings.push({
      path: 'forwardAuth.actionPostBodies',
      message:
        'queryOnly judges Action API POSTs by their query string alone, but PHP (and MediaWiki) let the POST body ' +
        'override it: a key limited to some modules can run any module by sending action=… in the body. ' +
        'Keep "refuse" unless every module-limited key may use every module.',
    })
  if (!config.secrets.salt) {
    // Refusing the config would refuse gateways that serve no envelopes at all; each request that
    // needs one still gets a 400 E1023 that says why.
    const mount = config.tokenApi.mounts[0] ?? '/mws/v1'
    warnings.push({
      path: 'secrets.salt',
      message: `not set: salted envelopes cannot be made, so ${mount}/user-token/generate?withIssuer=true and ${mount}/app-token/generate answer 400 E1023`,
    })
  }
  return warnings
}
