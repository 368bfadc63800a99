// The configured XYZ base map (settings.BASEMAP_URL) under a Leaflet map; none when unset.
(function () {
  "use strict";
  window.croplayerBasemap = function (map) {
    const el = document.getElementById("basemap-config");
    const cfg = el ? JSON.parse(el.textContent) : {};
    if (!cfg.url) return null;
    const layer = L.tileLayer(cfg.url, {
      attribution: cfg.attribution || "",
      maxZoom: 22,  // beyond the server's last level Leaflet scales that level's tiles up
      maxNativeZoom: cfg.maxZoom || 19,
      className: "basemap",
    });
    // Under the blocks, whatever pane they use.
    layer.setZIndex(0);
    return layer.addTo(map);
  };
})();
