// Converts world-atlas countries-<res>.json (Natural Earth, TopoJSON) into the map page's basemap GeoJSON:
// land (all countries merged) and borders (arcs shared by two countries), coordinates rounded to <dp> decimals.
//   node build-basemap.mjs 110m 2 OUT.json   (copied into a folder where world-atlas and topojson-client are installed;
//   see src/RsCapRet.Web/web/vendor/naturalearth/README.md)
import fs from 'fs';
import * as topo from 'topojson-client';
const res = process.argv[2], dp = +process.argv[3];
const t = JSON.parse(fs.readFileSync(`${process.env.WORLD_ATLAS ?? 'node_modules/world-atlas'}/countries-${res}.json`));
const r = (x) => Math.round(x * 10 ** dp) / 10 ** dp;
// A ring or line that crosses the antimeridian (a jump of more than 180° in longitude between two points) is made
// continuous (longitudes beyond ±180), so a planar map does not draw it as a band across the world.
const unwrap = (line) => {
  let shift = 0;
  return line.map((p, i) => {
    if (i > 0) { const d = p[0] - line[i - 1][0]; if (d > 180) shift -= 360; else if (d < -180) shift += 360; }
    return [p[0] + shift, p[1]];
  });
};
const lines = (c) => (typeof c[0][0] === 'number' ? unwrap(c) : c.map(lines));
const round = (c) => typeof c[0] === 'number' ? [r(c[0]), r(c[1])] : c.map(round);
const land = topo.merge(t, t.objects.countries.geometries);
const borders = topo.mesh(t, t.objects.countries, (a, b) => a !== b);
const fc = { type: 'FeatureCollection', features: [
  { type: 'Feature', properties: { kind: 'land' }, geometry: { type: land.type, coordinates: round(lines(land.coordinates)) } },
  { type: 'Feature', properties: { kind: 'border' }, geometry: { type: borders.type, coordinates: round(lines(borders.coordinates)) } },
]};
fs.writeFileSync(process.argv[4], JSON.stringify(fc));
