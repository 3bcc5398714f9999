using System.Globalization;
using System.Text;
using System.Text.Json;
using NetTopologySuite.Geometries;
using NetTopologySuite.IO;
using RsCapRet.Storage;

namespace RsCapRet.Queries;

/// <summary>
/// A validated change request (shared by the command line and the HTTP API): before and after are each a scene (id,
/// or a path on the command line) or a date range "FROM..TO" (either end may be left out); ranges need an area.
/// </summary>
public sealed record ChangeQuery(string? BeforeScene, string? AfterScene, TimeRange? BeforeRange, TimeRange? AfterRange,
    Geometry? Area, string? Toward, int K, double MinIou)
{
    public const int MaxK = 1000;
    private static readonly GeometryFactory Wgs84 = new(new PrecisionModel(), 4326);

    public bool ByScenes => BeforeScene is not null;

    /// <summary>Parses and checks user input; throws <see cref="FormatException"/> with a message fit for users.</summary>
    public static ChangeQuery Parse(string? before, string? after, string? area, string? bbox, string? toward, string? k, string? minIou,
        bool scenePathsAllowed = true)
    {
        if (string.IsNullOrWhiteSpace(before) || string.IsNullOrWhiteSpace(after))
            throw new FormatException("give both before and after: a scene id" + (scenePathsAllowed ? " or path" : "") + ", or a date range such as 2018-01-01..2019-01-01.");
        var (beforeScene, beforeRange) = SceneOrRange(before.Trim(), "before", scenePathsAllowed);
        var (afterScene, afterRange) = SceneOrRange(after.Trim(), "after", scenePathsAllowed);
        if ((beforeScene is null) != (afterScene is null))
            throw new FormatException("before and after must both be scenes or both be date ranges.");
        if (!string.IsNullOrWhiteSpace(area) && !string.IsNullOrWhiteSpace(bbox)) throw new FormatException("give either area (WKT) or bbox, not both.");
        var region = !string.IsNullOrWhiteSpace(bbox) ? SearchQuery.ParseBbox(bbox) : !string.IsNullOrWhiteSpace(area) ? ParseArea(area) : null;
        if (beforeRange is not null && region is null) throw new FormatException("date ranges need an area (area=WKT or bbox=...): it bounds the work.");
        if (beforeRange is { To: { } bt } && afterRange is { From: { } af } && af < bt)
            throw new FormatException($"the after range must start at or after the end of the before range ({beforeRange} and {afterRange}).");
        if (beforeRange is { To: null } || afterRange is { From: null })
            throw new FormatException("the before range needs an end and the after range a start (e.g. before ..2019-01-01, after 2020-01-01..).");
        toward = toward?.Trim();
        if (toward is { Length: > SearchQuery.MaxTextLength }) throw new FormatException($"toward has {toward.Length} characters; at most {SearchQuery.MaxTextLength} are allowed.");
        var kValue = 20;
        if (!string.IsNullOrWhiteSpace(k) && (!int.TryParse(k, NumberStyles.Integer, CultureInfo.InvariantCulture, out kValue) || kValue < 1 || kValue > MaxK))
            throw new FormatException($"k must be an integer between 1 and {MaxK}, got '{k}'.");
        var iou = 0.5;
        if (!string.IsNullOrWhiteSpace(minIou) && (!double.TryParse(minIou, NumberStyles.Float, CultureInfo.InvariantCulture, out iou) || !(iou > 0 && iou <= 1)))
            throw new FormatException($"min_iou must be a number in (0, 1], got '{minIou}'.");
        return new ChangeQuery(beforeScene, afterScene, beforeRange, afterRange, region, string.IsNullOrEmpty(toward) ? null : toward, kValue, iou);
    }

    private static (string? Scene, TimeRange? Range) SceneOrRange(string value, string name, bool pathsAllowed)
    {
        var dots = value.IndexOf("..", StringComparison.Ordinal);
        if (dots >= 0 && !value.Contains('/') && !value.Contains('\\'))
        {
            var range = new TimeRange(SearchQuery.Date(value[..dots], name), SearchQuery.Date(value[(dots + 2)..], name));
            if (range is { From: { } f, To: { } t } && f >= t) throw new FormatException($"{name}: the range {value} is empty (its start is not before its end).");
            return (null, range);
        }
        if (long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var id) && id > 0) return (value, null);
        if (!pathsAllowed) throw new FormatException($"{name} must be a scene id or a date range such as 2018-01-01..2019-01-01, got '{value}'.");
        return (value, null);
    }

    private static Geometry ParseArea(string wkt)
    {
        Geometry g;
        try { g = new WKTReader(Wgs84.GeometryServices).Read(wkt); }
        catch (Exception e) when (e is ParseException or ArgumentException or FormatException)
        {
            throw new FormatException($"area must be a WKT polygon in lon/lat (EPSG:4326), e.g. POLYGON((-97.8 30.2, ...)): {e.Message}");
        }
        if (g is not (Polygon or MultiPolygon)) throw new FormatException($"area must be a Polygon or MultiPolygon, got a {g.GeometryType}.");
        if (!g.IsValid) throw new FormatException("area is not a valid polygon (self-intersecting or unclosed).");
        var env = g.EnvelopeInternal;
        if (env.MinX < -180 || env.MaxX > 180 || env.MinY < -90 || env.MaxY > 90) throw new FormatException("area must be in lon/lat degrees (EPSG:4326).");
        g.SRID = 4326;
        return g;
    }
}

/// <summary>Change results as a table for terminals and as GeoJSON (overlap footprints) for maps and GIS tools.</summary>
public static class ChangeOutput
{
    /// <summary>
    /// The pairs, one a line; with a toward text, each after tile's relevance to it and whether it matches (≥ 0.5),
    /// and a first line when none matches (or why relevance is not available).
    /// </summary>
    public static string Table(RankedChanges ranked)
    {
        var changes = ranked.Changes;
        if (changes.Count == 0) return "no changes found\n";
        var toward = ranked.Toward is not null;
        var sb = new StringBuilder();
        if (ranked.RelevanceNote is not null) sb.AppendLine($"note: {ranked.RelevanceNote}");
        else if (ranked.NoMatchLine is { } none) sb.AppendLine(none);
        sb.AppendLine($"{"#",3} {(toward ? "gain" : "change"),7} {"iou",5} {"before",8} {"after",8} " + (toward ? $"{"after relev.",12} {"match",5} " : "") +
                      $"{"centre (lon, lat)",-22} before caption  ->  after caption");
        for (var i = 0; i < changes.Count; i++)
        {
            var c = changes[i];
            var p = c.Overlap?.Centroid;
            var centre = p is null || p.IsEmpty ? "-" : FormattableString.Invariant($"{p.X:F5}, {p.Y:F5}");
            var score = toward ? c.TowardGain ?? 0 : c.Distance;
            var relevance = !toward ? "" : FormattableString.Invariant(
                $"{(ranked.AfterRelevance[i] is { } r ? r.ToString("F3", CultureInfo.InvariantCulture) : "-"),12} {ranked.Matches(i) switch { true => "yes", false => "no", null => "-" },5} ");
            sb.AppendLine(FormattableString.Invariant($"{i + 1,3} {score,7:F3} {c.Iou,5:F2} {c.BeforeTile,8} {c.AfterTile,8} {relevance}{centre,-22} {c.BeforeCaption}  ->  {c.AfterCaption}"));
        }
        return sb.ToString();
    }

    /// <summary>
    /// A FeatureCollection of overlap polygons with both tiles' facts; the notes (why nothing paired) travel as a
    /// foreign member "notes". With a toward text: "toward", "any_match" (whether any pair's after tile matches it;
    /// null without relevance), "relevance_note" when relevance is not available, and per pair "after_relevance"
    /// (the after tile's calibrated relevance to the text) and "matches" (after_relevance ≥ 0.5); both null otherwise.
    /// </summary>
    public static string GeoJson(RankedChanges ranked, Func<long, string>? thumbnailUrl = null)
    {
        var (changes, notes) = (ranked.Changes, ranked.Notes);
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("type", "FeatureCollection");
            w.WriteStartArray("notes");
            foreach (var n in notes) w.WriteStringValue(n);
            w.WriteEndArray();
            if (ranked.Toward is { } text) w.WriteString("toward", text); else w.WriteNull("toward");
            if (ranked.AnyMatch is { } any) w.WriteBoolean("any_match", any); else w.WriteNull("any_match");
            if (ranked.RelevanceNote is not null) w.WriteString("relevance_note", ranked.RelevanceNote);
            w.WriteStartArray("features");
            for (var i = 0; i < changes.Count; i++)
            {
                var (c, rank, at) = (changes[i], i + 1, i);
                GeoJsonGeometry.WriteFeature(w, null, c.Overlap, p =>
                {
                    p.WriteNumber("rank", rank);
                    p.WriteNumber("distance", Math.Round(c.Distance, 6));
                    if (c.TowardGain is { } g) p.WriteNumber("toward_gain", Math.Round(g, 6)); else p.WriteNull("toward_gain");
                    if (ranked.AfterRelevance[at] is { } r) p.WriteNumber("after_relevance", r); else p.WriteNull("after_relevance");
                    if (ranked.Matches(at) is { } m) p.WriteBoolean("matches", m); else p.WriteNull("matches");
                    p.WriteNumber("iou", Math.Round(c.Iou, 4));
                    Side(p, "before", c.BeforeTile, c.BeforeScene, c.BeforeCaption, c.BeforeAcquired, thumbnailUrl);
                    Side(p, "after", c.AfterTile, c.AfterScene, c.AfterCaption, c.AfterAcquired, thumbnailUrl);
                });
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray());
    }

    private static void Side(Utf8JsonWriter w, string name, long tile, long scene, string? caption, DateTimeOffset? acquired, Func<long, string>? thumbnailUrl)
    {
        w.WriteStartObject(name);
        w.WriteNumber("tile_id", tile);
        w.WriteNumber("scene_id", scene);
        if (caption is null) w.WriteNull("caption"); else w.WriteString("caption", caption);
        if (acquired is { } t) w.WriteString("acquired_at", t.ToString("O", CultureInfo.InvariantCulture)); else w.WriteNull("acquired_at");
        if (thumbnailUrl is not null) w.WriteString("thumbnail_url", thumbnailUrl(tile));
        w.WriteEndObject();
    }
}
