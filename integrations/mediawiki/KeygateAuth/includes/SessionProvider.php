<?php

namespace MediaWiki\Extension\KeygateAuth;

use InvalidArgumentException;
use MediaWiki\MediaWikiServices;
use MediaWiki\Session\ImmutableSessionProviderWithCookie;
use MediaWiki\Session\SessionInfo;
use MediaWiki\Session\UserInfo;
use ObjectCache;
use WebRequest;

/**
 * Logs the wiki user in from keygate's signed identity assertion. A request without one, or
 * with one that fails any check (signature, key, issuer, audience, expiry), gets no session
 * from here: the wiki's other providers (its own login cookies) or anonymity apply — never an
 * error page. Plain identity headers (X-Auth-User) are not read at all.
 */
class SessionProvider extends ImmutableSessionProviderWithCookie {
	private const SERVICE_SCHEMES = [ 'apikey', 'apptoken' ];

	/** @var AssertionVerifier|null */
	private $verifier = null;

	public function provideSessionInfo( WebRequest $request ) {
		$config = $this->getConfig();
		$token = $request->getHeader( $config->get( 'KeygateAuthHeader' ) );
		if ( !is_string( $token ) || trim( $token ) === '' ) {
			return null;
		}
		$claims = $this->verifier()->verify( trim( $token ) );
		if ( $claims === null ) {
			$this->logger->info( 'KeygateAuth: an assertion failed verification; the request stays anonymous' );
			return null;
		}
		$isService = in_array( $claims['scheme'], self::SERVICE_SCHEMES, true );
		$serviceUser = (string)$config->get( 'KeygateAuthServiceUser' );
		$name = $isService && $serviceUser !== '' ? $serviceUser : $claims['sub'];
		try {
			$userInfo = UserInfo::newFromName( $name, true );
		} catch ( InvalidArgumentException $e ) {
			$this->logger->info( 'KeygateAuth: "{name}" is not a valid wiki user name', [ 'name' => $name ] );
			return null;
		}
		$user = $userInfo->getUser();
		if ( !$user->isRegistered() && !$config->get( 'KeygateAuthAutoCreate' ) ) {
			return null;
		}
		// A service user's groups are the wiki's to set: ApiKey and AppToken callers share it.
		if ( !$isService ) {
			$managed = (array)$config->get( 'KeygateAuthSyncGroups' );
			$groups = $claims['groups'] ?? [];
			if ( $user->isRegistered() ) {
				GroupSync::apply( $user, $managed, $groups );
			} else {
				GroupSync::defer( $user->getName(), $managed, $groups );
			}
		}
		return new SessionInfo( SessionInfo::MAX_PRIORITY, [
			'provider' => $this,
			// one stable session per user, so a CSRF token fetched in one request holds in the next
			'id' => $this->hashToSessionId( $user->getName() ),
			'userInfo' => $userInfo,
			'persisted' => true,
			'forceUse' => true,
		] );
	}

	private function verifier(): AssertionVerifier {
		if ( $this->verifier === null ) {
			$config = $this->getConfig();
			$url = (string)$config->get( 'KeygateAuthJwksUrl' );
			$keys = null;
			if ( $url !== '' ) {
				$services = MediaWikiServices::getInstance();
				$source = new JwksKeySource(
					$url,
					(int)$config->get( 'KeygateAuthJwksCacheTtl' ),
					ObjectCache::getLocalClusterInstance(),
					$services->getHttpRequestFactory(),
					$this->logger
				);
				$keys = [ $source, 'keyFor' ];
			}
			$this->verifier = new AssertionVerifier(
				$keys,
				(string)$config->get( 'KeygateAuthSecret' ),
				(string)$config->get( 'KeygateAuthIssuer' ),
				(string)$config->get( 'KeygateAuthAudience' ),
				(int)$config->get( 'KeygateAuthClockSkew' )
			);
		}
		return $this->verifier;
	}
}
