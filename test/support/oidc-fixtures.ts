import { CLIENT_ID, CLIENT_SECRET, type TestUser } from './oidc-provider.js'

// The people at the test provider and keygate's entry for that provider, shared by the OIDC and
// the browser tests so that both sign in the same carol through the same claims mapping.

export const IDP_USERS = {
  carol: {
    password: 'carol-idp-pw',
    claims: {
      preferred_username: 'carol',
      name: 'Carol Example',
      email: 'carol@example.org',
      email_verified: true,
      org: { teams: ['editors', 'wiki-admins'] },
    },
  },
  // a provider's bob, who is not the local user bob
  bobby: {
    password: 'bobby-idp-pw',
    claims: {
      preferred_username: 'bob',
      name: 'Bob at the IdP',
      email: 'bob@idp.example',
      org: { teams: ['readers'] },
    },
  },
  dave: {
    password: 'dave-idp-pw',
    claims: {
      preferred_username: 'dave',
      name: 'Dave',
      email: 'dave@other.example',
      email_verified: true,
      org: { teams: ['editors'] },
    },
  },
} satisfies Record<string, TestUser>

export type IdpLogin = keyof typeof IDP_USERS

/** A `signIn.providers` entry for the test provider at `issuer`; groups from the dotted claim org.teams. */
export const providerEntry = (issuer: string, id: string, over: Record<string, unknown> = {}) => ({
  id,
  name: id === 'corp' ? 'Corp SSO' : `Provider ${id}`,
  issuer,
  clientId: CLIENT_ID,
  clientSecret: CLIENT_SECRET,
  scopes: ['openid', 'profile', 'email', 'groups'],
  claims: { username: 'preferred_username', groups: 'org.teams' },
  ...over,
})
