import { after } from 'node:test'
import { chromium, type Browser } from 'playwright-core'

// Debian's chromium (.ci/run installs it), driven by playwright-core: no browser is ever downloaded.

export const CHROMIUM = '/usr/bin/chromium'

/** A headless Chromium of its own, closed after the test file. */
export async function launchChromium(): Promise<Browser> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  })
  after(() => browser.close())
  return browser
}
