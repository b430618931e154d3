"""The web page `adainrt serve` shows at / (plain HTML, CSS and JavaScript; no CDN, works offline)."""
