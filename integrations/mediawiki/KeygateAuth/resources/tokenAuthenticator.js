/*
 * mws.tokenAuthenticator.generateToken( withIssuer ): a promise of a user token for the signed-in
 * user, from keygate's user-token endpoint — the same call the MediaWiki token authenticator
 * offered, so its clients keep working unchanged.
 */
( function () {
	var config = require( './config.json' );

	function endpoint() {
		return config.userTokenUrl || ( mw.util.wikiScript( 'rest' ) + '/mws/v1/user-token/generate' );
	}

	window.mws = window.mws || {};
	window.mws.tokenAuthenticator = {
		generateToken: function ( withIssuer ) {
			var dfd = $.Deferred();
			$.ajax( {
				url: endpoint() + '?withIssuer=' + ( withIssuer ? 'true' : 'false' ),
				dataType: 'json',
				type: 'GET'
			} ).done( function ( data ) {
				if ( data && data.value ) {
					dfd.resolve( data.value );
				} else {
					dfd.reject();
				}
			} ).fail( function () {
				dfd.reject();
			} );
			return dfd.promise();
		}
	};
}() );
