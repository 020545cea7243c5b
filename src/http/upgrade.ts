/** `Upgrade: websocket` alone (any case): the one protocol tunnelled without a route opting in. */
export const isWebSocketUpgrade = (upgrade: string | undefined): boolean =>
  upgrade !== undefined && upgrade.trim().toLowerCase() === 'websocket'
