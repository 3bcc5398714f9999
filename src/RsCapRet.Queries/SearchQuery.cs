using System.Globalization;
using System.Text;
using System.Text.Json;
using NetTopologySuite.Geometries;
using RsCapRet.Storage;

namespace RsCapRet.Queries;

/// <summary>A validated search request (shared by the command line and the HTTP API).</summary>
public sealed record SearchQuery(string? Text, int K, SearchFilter Filter)
{
    /// <summary>Rows of the ranking skipped before this page (paging; offset + k at most <see cref="CatalogStore.MaxRankDepth"/>).</summary>
    public int Offset { get; init; }
    /// <summary>Only results with at least this relevance (0..1); null: all.</summary>
    public double? MinRelevance { get; init; }

    public const int MaxK = 1000;
    public const int MaxTextLength = 1000;
    private static readonly GeometryFactory Wgs84 = new(new PrecisionModel(), 4326);

    /// <summary>Parses and checks user input; throws <see cref="FormatException"/> with a message fit for users.</summary>
    public static SearchQuery Parse(string? text, string? k, string? bbox, string? near, string? after, string? before, bool exact = false,
        bool textRequired = true, string? offset = null, string? minRelevance = null, string? scene = null, string? latest = null, string? asOf = null)
    {
        text = text?.Trim();
        if (textRequired && string.IsNullOrEmpty(text)) throw new FormatException("The query text is empty.");
        if (text is { Length: > MaxTextLength }) throw new FormatException($"The query text has {text.Length} characters; at most {MaxTextLength} are allowed.");
        var kValue = 10;
        if (!string.IsNullOrWhiteSpace(k) && (!int.TryParse(k, NumberStyles.Integer, CultureInfo.InvariantCulture, out kValue) || kValue < 1 || kValue > MaxK))
            throw new FormatException($"k must be an integer between 1 and {MaxK}, got '{k}'.");
        Geometry? area = string.IsNullOrWhiteSpace(bbox) ? null : ParseBbox(bbox);
        Point? point = null;
        double? radius = null;
        if (!string.IsNullOrWhiteSpace(near))
        {
            var v = Numbers(near, 3, "near", "lon,lat,metres");
            CheckLon(v[0], "near"); CheckLat(v[1], "near");
            if (v[2] <= 0 || v[2] > 20_000_000) throw new FormatException($"near: the radius must be in (0, 20000000] metres, got {v[2]}.");
            point = Wgs84.CreatePoint(new Coordinate(v[0], v[1]));
            radius = v[2];
        }
        var afterDate = Date(after, "after");
        var beforeDate = Date(before, "before");
        if (afterDate >= beforeDate) throw new FormatException("after must be earlier than before.");
        var offsetValue = 0;
        if (!string.IsNullOrWhiteSpace(offset) && (!int.TryParse(offset, NumberStyles.Integer, CultureInfo.InvariantCulture, out offsetValue) || offsetValue < 0))
            throw new FormatException($"offset must be a whole number of rows, 0 or more, got '{offset}'.");
        if ((long)offsetValue + kValue > CatalogStore.MaxRankDepth)
            throw new FormatException($"offset + k must be at most {CatalogStore.MaxRankDepth} (the ranking is {CatalogStore.MaxRankDepth} rows deep), got {offsetValue} + {kValue}.");
        var (newest, asOfBefore) = ParsePerPlace(latest, asOf);
        if (asOfBefore is { } bound && (beforeDate is null || bound < beforeDate)) beforeDate = bound;
        if (afterDate >= beforeDate) throw new FormatException("after must be earlier than as_of.");
        return new SearchQuery(text, kValue, new SearchFilter(area, point, radius, afterDate, beforeDate, Exact: exact,
            SceneId: ParseSceneId(scene), NewestPerPlace: newest))
        {
            Offset = offsetValue,
            MinRelevance = RankedHits.ParseMinimum(minRelevance),
        };
    }

    /// <summary>A "minLon,minLat,maxLon,maxLat" box (WGS84) as a polygon.</summary>
    public static Geometry ParseBbox(string bbox)
    {
        var v = Numbers(bbox, 4, "bbox", "minLon,minLat,maxLon,maxLat");
        CheckLon(v[0], "bbox"); CheckLon(v[2], "bbox"); CheckLat(v[1], "bbox"); CheckLat(v[3], "bbox");
        if (v[0] >= v[2] || v[1] >= v[3]) throw new FormatException($"bbox must have min < max on both axes, got '{bbox}'.");
        return Wgs84.ToGeometry(new Envelope(v[0], v[2], v[1], v[3]));
    }

    /// <summary>An optional scene id (only that scene's tiles); null when not given.</summary>
    public static long? ParseSceneId(string? s) =>
        string.IsNullOrWhiteSpace(s) ? null
        : long.TryParse(s.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var id) && id > 0
            ? id : throw new FormatException($"scene must be a positive scene id, got '{s}'.");

    /// <summary>
    /// One acquisition per place (the map page's default): latest=true keeps the newest; as_of=DATE the newest acquired
    /// on or before that day (implies latest), returned as the exclusive bound (the next day's start, UTC).
    /// </summary>
    public static (bool Newest, DateTimeOffset? AcquiredBefore) ParsePerPlace(string? latest, string? asOf)
    {
        var newest = latest?.Trim().ToLowerInvariant() switch
        {
            null or "" or "false" or "0" => false,
            "true" or "1" => true,
            _ => throw new FormatException($"latest must be true or false, got '{latest}'."),
        };
        if (Date(asOf, "as_of") is not { } day) return (newest, null);
        return (true, new DateTimeOffset(day.UtcDateTime.Date, TimeSpan.Zero).AddDays(1));
    }

    /// <summary>A tile id for image-to-image search.</summary>
    public static long ParseTileId(string? s) =>
        long.TryParse(s?.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var id) && id > 0
            ? id : throw new FormatException($"tile must be a positive tile id, got '{s}'.");

    private static double[] Numbers(string s, int count, string name, string shape)
    {
        var parts = s.Split(',');
        var values = new double[parts.Length];
        if (parts.Length != count || parts.Select((p, i) => double.TryParse(p.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out values[i])).Any(ok => !ok)
            || values.Any(x => !double.IsFinite(x)))
            throw new FormatException($"{name} must be {count} numbers '{shape}', got '{s}'.");
        return values;
    }

    private static void CheckLon(double v, string name) { if (v is < -180 or > 180) throw new FormatException($"{name}: longitude {v} is outside -180..180."); }
    private static void CheckLat(double v, string name) { if (v is < -90 or > 90) throw new FormatException($"{name}: latitude {v} is outside -90..90."); }

    internal static DateTimeOffset? Date(string? s, string name)
    {
        if (string.IsNullOrWhiteSpace(s)) return null;
        return DateTimeOffset.TryParse(s, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var d)
            ? d : throw new FormatException($"{name} must be a date such as 2020-01-31, got '{s}'.");
    }
}

/// <summary>Search results as a table for terminals and as GeoJSON for GIS tools.</summary>
public static class SearchOutput
{
    public static string Table(IReadOnlyList<TileHit> hits)
    {
        if (hits.Count == 0) return "no tiles found\n";
        var sb = new StringBuilder();
        sb.AppendLine($"{"#",3} {"score",6} {"tile",7} {"scene",-40} {"window",-18} {"centre (lon, lat)",-22} caption");
        for (var i = 0; i < hits.Count; i++)
        {
            var h = hits[i];
            sb.AppendLine(FormattableString.Invariant($"{i + 1,3} {1 - h.Distance,6:F3} {Row(h)}"));
        }
        return sb.ToString();
    }

    private static string Row(TileHit h)
    {
        var c = h.Footprint?.Centroid;
        var centre = c is null ? "-" : FormattableString.Invariant($"{c.X:F5}, {c.Y:F5}");
        var scene = Path.GetFileName(h.ScenePath);
        if (scene.Length > 40) scene = "…" + scene[^39..];
        return FormattableString.Invariant($"{h.TileId,7} {scene,-40} {$"{h.PxWidth}x{h.PxHeight}+{h.PxX}+{h.PxY}",-18} {centre,-22} {h.Caption}");
    }

    /// <summary>
    /// The table with each hit's relevance: a line first says "no good match" when nothing reaches 0.5 (the nearest
    /// are still listed, marked "~"), when nothing reached --min-relevance, or why relevance is not available.
    /// </summary>
    public static string Table(RankedHits ranked)
    {
        if (ranked.Hits.Count == 0) return ranked.Offset > 0 ? $"no tiles after row {ranked.Offset}\n" : "no tiles found\n";
        var sb = new StringBuilder();
        if (ranked.Note is not null) sb.AppendLine($"note: {ranked.Note}");
        else if (ranked.BelowMinimum)
            sb.AppendLine(FormattableString.Invariant($"no good match: no tile reaches relevance {ranked.Minimum:0.######} (--min-relevance); the nearest is shown, marked ~"));
        else if (ranked.GoodMatch == false)
            sb.AppendLine(FormattableString.Invariant($"no good match: no tile reaches relevance {RelevanceCalibration.GoodMatch:0.0}; the nearest are shown, marked ~"));
        sb.AppendLine($"{"#",4} {"relev.",6} {"score",6} {"tile",7} {"scene",-40} {"window",-18} {"centre (lon, lat)",-22} caption");
        for (var i = 0; i < ranked.Hits.Count; i++)
        {
            var h = ranked.Hits[i];
            var relevance = ranked.Relevance[i] is { } r ? r.ToString("F3", CultureInfo.InvariantCulture) : "-";
            var rank = (ranked.Offset + i + 1).ToString(CultureInfo.InvariantCulture) + (ranked.Weak(i) ? "~" : "");
            sb.AppendLine(FormattableString.Invariant($"{rank,4} {relevance,6} {1 - h.Distance,6:F3} {Row(h)}"));
            if (ranked.Localized is { } loc) sb.AppendLine("     " + HotLine(loc, h.TileId));
        }
        return sb.ToString();
    }

    /// <summary>
    /// "hot_cells": the merged polygon (or multipolygon) of the result's hottest cells in EPSG:4326, with "cells"
    /// ([row, col] pairs, row 0 at the top), "best_score", "threshold" and "from" ("stored" or "imagery"); null with
    /// "hot_cells_note" when the result could not be localised.
    /// </summary>
    private static void WriteHotCells(Utf8JsonWriter p, SearchLocalizer.Outcome loc, long tileId)
    {
        if (!loc.Hot.TryGetValue(tileId, out var hot))
        {
            p.WriteNull("hot_cells");
            p.WriteString("hot_cells_note", loc.Missing.GetValueOrDefault(tileId, "not localised"));
            return;
        }
        p.WriteStartObject("hot_cells");
        p.WritePropertyName("geometry");
        if (hot.Area is null) p.WriteNullValue(); else GeoJsonGeometry.Write(p, hot.Area);
        p.WriteStartArray("cells");
        foreach (var (row, col) in hot.Cells) { p.WriteStartArray(); p.WriteNumberValue(row); p.WriteNumberValue(col); p.WriteEndArray(); }
        p.WriteEndArray();
        p.WriteNumber("best_score", Math.Round(hot.BestScore, 6));
        p.WriteNumber("threshold", Math.Round(hot.Threshold, 6));
        p.WriteString("from", hot.From);
        p.WriteEndObject();
    }

    /// <summary>A result's hot cells as one table line: the cells (row, col), the best score, the area's centre.</summary>
    private static string HotLine(SearchLocalizer.Outcome loc, long tileId)
    {
        if (!loc.Hot.TryGetValue(tileId, out var hot)) return $"hot cells: none ({loc.Missing.GetValueOrDefault(tileId, "not localised")})";
        var cells = string.Join(" ", hot.Cells.Select(c => FormattableString.Invariant($"r{c.Row}c{c.Col}")));
        var centre = hot.Area?.Centroid is { } p ? FormattableString.Invariant($", centre {p.X:F6}, {p.Y:F6}") : "";
        return FormattableString.Invariant($"hot cells ({hot.From}): {cells}; best {hot.BestScore:F3}, at least {hot.Threshold:F3}{centre}");
    }

    /// <summary>
    /// <see cref="GeoJson(IReadOnlyList{TileHit}, Func{TileHit, string}?)"/> with relevance: each feature's
    /// "relevance" (null when not available) and "weak" (below 0.5, or kept only as the nearest below min_relevance);
    /// the collection's "offset", "good_match" (whether any reaches 0.5; null without relevance),
    /// "below_min_relevance", and "relevance_note" when relevance is not available.
    /// </summary>
    public static string GeoJson(RankedHits ranked, Func<TileHit, string>? thumbnailUrl = null) =>
        GeoJson(ranked.Hits, thumbnailUrl, ranked);

    /// <summary>A GeoJSON FeatureCollection: footprint polygons (EPSG:4326) with caption, score and tile facts.</summary>
    public static string GeoJson(IReadOnlyList<TileHit> hits, Func<TileHit, string>? thumbnailUrl = null) => GeoJson(hits, thumbnailUrl, null);

    private static string GeoJson(IReadOnlyList<TileHit> hits, Func<TileHit, string>? thumbnailUrl, RankedHits? ranked)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("type", "FeatureCollection");
            if (ranked is not null)
            {
                w.WriteNumber("offset", ranked.Offset);
                if (ranked.GoodMatch is { } good) w.WriteBoolean("good_match", good); else w.WriteNull("good_match");
                w.WriteBoolean("below_min_relevance", ranked.BelowMinimum);
                if (ranked.Minimum is { } min) w.WriteNumber("min_relevance", min);
                if (ranked.Note is not null) w.WriteString("relevance_note", ranked.Note);
            }
            w.WriteStartArray("features");
            for (var i = 0; i < hits.Count; i++)
            {
                var (h, rank, at) = (hits[i], (ranked?.Offset ?? 0) + i + 1, i);
                GeoJsonGeometry.WriteFeature(w, h.TileId, h.Footprint, p =>
                {
                    p.WriteNumber("rank", rank);
                    p.WriteNumber("tile_id", h.TileId);
                    p.WriteNumber("score", Math.Round(1 - h.Distance, 6));
                    if (ranked is not null)
                    {
                        if (ranked.Relevance[at] is { } r) p.WriteNumber("relevance", r); else p.WriteNull("relevance");
                        p.WriteBoolean("weak", ranked.Weak(at));
                    }
                    p.WriteNumber("distance", Math.Round(h.Distance, 6));
                    if (h.Caption is null) p.WriteNull("caption"); else p.WriteString("caption", h.Caption);
                    p.WriteNumber("scene_id", h.SceneId);
                    p.WriteString("scene", h.ScenePath);
                    p.WriteStartObject("window");
                    p.WriteNumber("x", h.PxX); p.WriteNumber("y", h.PxY); p.WriteNumber("width", h.PxWidth); p.WriteNumber("height", h.PxHeight);
                    p.WriteEndObject();
                    p.WriteNumber("grid_row", h.GridRow);
                    p.WriteNumber("grid_col", h.GridCol);
                    if (h.AcquiredAt is { } t) p.WriteString("acquired_at", t.ToString("O", CultureInfo.InvariantCulture)); else p.WriteNull("acquired_at");
                    p.WriteBoolean("out_of_range", h.OutOfRange);   // the scene's resolution is far outside the model's range
                    if (thumbnailUrl != null) p.WriteString("thumbnail_url", thumbnailUrl(h));
                    if (ranked?.Localized is { } loc) WriteHotCells(p, loc, h.TileId);
                });
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray());
    }
}
