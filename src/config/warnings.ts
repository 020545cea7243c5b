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
  return warnings
}
