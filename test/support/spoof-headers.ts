// Identity header names as a client may spell them to get past a strip that compares exact names:
// PHP folds '-', '_', '.' and more into '_', so each of these reads as an identity header there.
// Shared by the HTTP/1.1 (identity-headers) and HTTP/2 (http2-hostile) tables; every row carries a
// value of its own, to tell which one leaked.
export const spoofSpellings = [
  'X-Auth.User',
  'x-auth.user',
  'X-AUTH.EMAIL',
  'X-Auth.Email',
  'X.Auth.User',
  'X-Auth.User.Id',
  'X-Auth.User-Id',
  'X-Auth.Groups',
  'X-Auth.Scheme',
  // mixed
  'X-Auth_User',
  'X-AUTH-USER',
  'x-auth-groups',
  'X_Auth.User',
  'x.AUTH_user-ID',
  'X-Auth_Email',
  'x_auth_groups',
  'X-Auth-Email',
  // space-adjacent: Node refuses these, or they never reach PHP under an identity name
  'X-Auth-Email ',
  'X-Auth.Email ',
  'X-Auth-Email\t',
  ' X-Auth-Email',
]
