<?php
// Included from the throwaway wiki's LocalSettings.php (test/mediawiki.test.ts): MediaWiki trusts
// the identity keygate injects, as an auth_request-style set-up does. Real deployments must make
// the wiki reachable only through keygate (loopback, a sidecar's localhost, a network policy):
// keygate strips every client spelling of X-Auth-User, nobody else does.

use MediaWiki\Session\ImmutableSessionProviderWithCookie;
use MediaWiki\Session\SessionInfo;
use MediaWiki\Session\UserInfo;

class KeygateTrustedHeaderSessionProvider extends ImmutableSessionProviderWithCookie {
	public function provideSessionInfo( WebRequest $request ) {
		// only from the gateway's address
		$peer = $_SERVER['REMOTE_ADDR'] ?? '';
		if ( !in_array( $peer, $this->getConfig()->get( 'KeygateAddresses' ), true ) ) {
			return null;
		}
		$name = $request->getHeader( 'X-Auth-User' );
		if ( $name === false || $name === '' ) {
			return null;
		}
		// keygate percent-encodes '%', non-ASCII and control characters in identity values (UTF-8)
		$name = rawurldecode( $name );
		$userInfo = UserInfo::newFromName( $name, true );
		if ( !$userInfo->getUser()->isRegistered() ) {
			return null; // keygate knows someone the wiki does not: stay anonymous
		}
		return new SessionInfo( SessionInfo::MAX_PRIORITY, [
			'provider' => $this,
			// one stable session per user, so a CSRF token fetched in one request is valid in the next
			'id' => $this->hashToSessionId( $name ),
			'userInfo' => $userInfo,
			'persisted' => true,
			'forceUse' => true,
		] );
	}
}
