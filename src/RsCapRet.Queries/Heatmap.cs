using System.Globalization;
using System.Text;
using System.Text.Json;
using NetTopologySuite.Geometries;
using RsCapRet.Storage;

namespace RsCapRet.Queries;

/// <summary>
/// A heat map request: a text (its [RET] vector) or a stored tile (its image vector), over a box of the map or one
/// scene, drawing at most <see cref="MaxTiles"/> tiles.
/// </summary>
public sealed record HeatmapQuery(string? Text, long? Tile, Geometry? Area, long? Scene, int MaxTiles)
{
    public const int DefaultMaxTiles = 20_000;
    public const int Limit = 200_000;

    public static HeatmapQuery Parse(string? q, string? tile, string? bbox, string? scene, string? max)
    {
        var text = string.IsNullOrWhiteSpace(q) ? null : q.Trim();
        var hasTile = !string.IsNullOrWhiteSpace(tile);
        if ((text is null) == !hasTile) throw new FormatException("give q (a text) or tile (a tile id), one of them.");
        if (text is { Length: > SearchQuery.MaxTextLength }) throw new FormatException($"The query text has {text.Length} characters; at most {SearchQuery.MaxTextLength} are allowed.");
        long? tileId = hasTile ? SearchQuery.ParseTileId(tile) : null;
        var hasBbox = !string.IsNullOrWhiteSpace(bbox);
        var hasScene = !string.IsNullOrWhiteSpace(scene);
        if (!hasBbox && !hasScene) throw new FormatException("give bbox (minLon,minLat,maxLon,maxLat) or scene (a scene id): the heat map covers an area.");
        long? sceneId = null;
        if (hasScene)
            sceneId = long.TryParse(scene!.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var s) && s > 0
                ? s : throw new FormatException($"scene must be a positive scene id, got '{scene}'.");
        var maxTiles = DefaultMaxTiles;
        if (!string.IsNullOrWhiteSpace(max) && (!int.TryParse(max, NumberStyles.Integer, CultureInfo.InvariantCulture, out maxTiles) || maxTiles < 1 || maxTiles > Limit))
            throw new FormatException($"max must be an integer between 1 and {Limit}, got '{max}'.");
        return new HeatmapQuery(text, tileId, hasBbox ? SearchQuery.ParseBbox(bbox!) : null, sceneId, maxTiles);
    }

    /// <summary>The most tiles a heat map with cells=1 draws (49 features each).</summary>
    public const int MaxCellTiles = 1_000;

    /// <summary>
    /// The scores as GeoJSON: tile footprints with score, and the answer's score range for the legend. With
    /// <paramref name="cells"/> (cells=1: the tiles' stored cell vectors, by tile id) a tile that has them is drawn as
    /// its cells instead (one feature each, with "row", "col" and the cell's score; the tile's own score as
    /// "tile_score"); "cell_tiles" counts them.
    /// </summary>
    public static string GeoJson(HeatmapResult result, string query, IReadOnlyDictionary<long, StoredTileCells>? cells, float[] vector)
    {
        if (cells is null) return GeoJson(result, query);
        var scored = new List<(TileScore Tile, CellScore? Cell)>();
        foreach (var t in result.Tiles)
        {
            if (!cells.TryGetValue(t.TileId, out var stored)) { scored.Add((t, null)); continue; }
            var hit = new TileHit(t.TileId, t.SceneId, "", 0, 0, 0, 0, 0, 0, t.Footprint, null, 1 - t.Score, null);
            foreach (var c in TileLocalizer.FromStored(hit, stored, query, vector).Cells) scored.Add((t, c));
        }
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = false }))
        {
            w.WriteStartObject();
            w.WriteString("type", "FeatureCollection");
            w.WriteString("query", query);
            w.WriteNumber("tiles", result.Tiles.Count);
            w.WriteNumber("cell_tiles", result.Tiles.Count(t => cells.ContainsKey(t.TileId)));
            if (scored.Count > 0)
            {
                w.WriteNumber("min_score", Math.Round(scored.Min(s => s.Cell?.Score ?? s.Tile.Score), 6));
                w.WriteNumber("max_score", Math.Round(scored.Max(s => s.Cell?.Score ?? s.Tile.Score), 6));
            }
            w.WriteStartArray("features");
            foreach (var (t, c) in scored)
                GeoJsonGeometry.WriteFeature(w, null, c?.Footprint ?? t.Footprint, p =>
                {
                    p.WriteNumber("tile_id", t.TileId);
                    p.WriteNumber("scene_id", t.SceneId);
                    p.WriteNumber("score", Math.Round(c?.Score ?? t.Score, 6));
                    if (c is null) return;
                    p.WriteNumber("row", c.Row);
                    p.WriteNumber("col", c.Col);
                    p.WriteNumber("tile_score", Math.Round(t.Score, 6));
                });
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray());
    }

    /// <summary>The scores as GeoJSON: tile footprints with score, and the answer's score range for the legend.</summary>
    public static string GeoJson(HeatmapResult result, string query)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = false }))
        {
            w.WriteStartObject();
            w.WriteString("type", "FeatureCollection");
            w.WriteString("query", query);
            w.WriteNumber("tiles", result.Tiles.Count);
            if (result.Tiles.Count > 0)
            {
                w.WriteNumber("min_score", Math.Round(result.Tiles.Min(t => t.Score), 6));
                w.WriteNumber("max_score", Math.Round(result.Tiles.Max(t => t.Score), 6));
            }
            w.WriteStartArray("features");
            foreach (var t in result.Tiles)
                GeoJsonGeometry.WriteFeature(w, t.TileId, t.Footprint, p =>
                {
                    p.WriteNumber("tile_id", t.TileId);
                    p.WriteNumber("scene_id", t.SceneId);
                    p.WriteNumber("score", Math.Round(t.Score, 6));
                });
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray());
    }
}
