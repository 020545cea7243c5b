<?php
// Router for `php -S`: serves MediaWiki's entry points under /w from the code tree given in
// MW_INSTALL_PATH (Debian: /usr/share/mediawiki), with PATH_INFO for rest.php/{route}.
$path = parse_url($_SERVER['REQUEST_URI'] ?? '/', PHP_URL_PATH) ?? '/';
if (!preg_match('#^/w/(api|rest|index|load)\.php(/.*)?$#', $path, $m)) {
	http_response_code(404);
	header('Content-Type: text/plain');
	echo "not a MediaWiki entry point\n";
	return true;
}
$script = rtrim(getenv('MW_INSTALL_PATH'), '/') . "/{$m[1]}.php";
$_SERVER['SCRIPT_NAME'] = "/w/{$m[1]}.php";
$_SERVER['SCRIPT_FILENAME'] = $script;
$_SERVER['PHP_SELF'] = $_SERVER['SCRIPT_NAME'] . ($m[2] ?? '');
if (isset($m[2])) {
	$_SERVER['PATH_INFO'] = $m[2];
} else {
	unset($_SERVER['PATH_INFO']);
}
chdir(dirname($script));
require $script;
return true;
