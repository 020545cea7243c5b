#!/bin/sh
# The wiki of docker-compose.yml: installed on first start (SQLite, in the wiki-data volume) and
# configured to log users in from keygate's signed identity assertion (the KeygateAuth
# extension, mounted from integrations/mediawiki/KeygateAuth). Later starts reuse it.
set -eu
data=/var/www/data
if [ ! -f "$data/LocalSettings.php" ]; then
  php maintenance/install.php --dbtype sqlite --dbpath "$data" --dbname keygatewiki \
    --server "${WIKI_SERVER:-http://localhost:8080}" --scriptpath "" --lang en \
    --pass "$WIKI_ADMIN_PASSWORD" --confpath "$data" "Keygate Wiki" Admin
  cat >> "$data/LocalSettings.php" <<'PHP'

# --- keygate: users are who keygate's signed assertion says (plain X-Auth-User is ignored)
wfLoadExtension( 'KeygateAuth' );
$wgKeygateAuthJwksUrl = 'http://keygate:8080/.well-known/jwks.json';
$wgKeygateAuthAudience = 'wiki';
$wgKeygateAuthServiceUser = 'ChatBot service user';
PHP
  chown -R www-data:www-data "$data"
fi
ln -sf "$data/LocalSettings.php" /var/www/html/LocalSettings.php
exec docker-php-entrypoint apache2-foreground
