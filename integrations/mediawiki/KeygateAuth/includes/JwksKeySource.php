<?php

namespace MediaWiki\Extension\KeygateAuth;

use BagOStuff;
use MediaWiki\Http\HttpRequestFactory;
use Psr\Log\LoggerInterface;

/**
 * keygate's public keys, fetched from its /.well-known/jwks.json and cached. A kid that is not
 * in the cached set (keygate rotated) fetches the set again, at most once per cooldown, so
 * forged kids cannot make the wiki hammer keygate.
 */
class JwksKeySource {
	private const COOLDOWN_SECONDS = 10;

	/** @var array<string,array>|null keys of this request, by kid */
	private $keys = null;

	public function __construct(
		private string $url,
		private int $ttlSeconds,
		private BagOStuff $cache,
		private HttpRequestFactory $http,
		private LoggerInterface $logger
	) {
	}

	public function keyFor( string $kid ): ?array {
		$cacheKey = $this->cache->makeGlobalKey( 'keygateauth-jwks', md5( $this->url ) );
		if ( $this->keys === null ) {
			$cached = $this->cache->get( $cacheKey );
			$this->keys = is_array( $cached ) ? $cached : null;
		}
		if ( $this->keys === null || !isset( $this->keys[$kid] ) ) {
			$this->refresh( $cacheKey );
		}
		return $this->keys[$kid] ?? null;
	}

	private function refresh( string $cacheKey ): void {
		$cooldownKey = $this->cache->makeGlobalKey( 'keygateauth-jwks-fetched', md5( $this->url ) );
		if ( !$this->cache->add( $cooldownKey, 1, self::COOLDOWN_SECONDS ) ) {
			return;
		}
		$body = $this->http->get( $this->url, [ 'timeout' => 5, 'connectTimeout' => 3 ], __METHOD__ );
		$set = is_string( $body ) ? json_decode( $body, true ) : null;
		if ( !is_array( $set ) || !isset( $set['keys'] ) || !is_array( $set['keys'] ) ) {
			$this->logger->warning( 'KeygateAuth: cannot read the JWKS at {url}', [ 'url' => $this->url ] );
			return;
		}
		$keys = [];
		foreach ( $set['keys'] as $jwk ) {
			if ( is_array( $jwk ) && is_string( $jwk['kid'] ?? null ) && !isset( $jwk['d'] ) ) {
				$keys[$jwk['kid']] = $jwk;
			}
		}
		$this->keys = $keys;
		$this->cache->set( $cacheKey, $keys, $this->ttlSeconds );
	}
}
