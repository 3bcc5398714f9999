using System.Text.Json;

namespace RsCapRet.Raster;

/// <summary>One item of a STAC catalog: its file and raster asset, or why it cannot be ingested.</summary>
public sealed record StacCatalogItem(string ItemPath, string? AssetPath, string? Problem);

/// <summary>
/// A local STAC catalog or collection (JSON files; links and asset hrefs resolved relative to the file that holds
/// them): its items, following "child" and "item" links. Each item is checked on its own, so a malformed item is
/// reported with its path and the problem while the others are listed as usual. Remote links (http, s3) are not
/// followed: this machine reads local archives only.
/// </summary>
public static class StacCatalog
{
    /// <summary>True when <paramref name="path"/> names a JSON file (a catalog, collection or item) rather than a folder.</summary>
    public static bool IsCatalogFile(string path) => path.EndsWith(".json", StringComparison.OrdinalIgnoreCase) && File.Exists(path);

    public static IReadOnlyList<StacCatalogItem> Items(string catalogPath)
    {
        var root = Path.GetFullPath(catalogPath);
        var items = new List<StacCatalogItem>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        Walk(root, isRoot: true, items, seen);
        return items;
    }

    private static void Walk(string path, bool isRoot, List<StacCatalogItem> items, HashSet<string> seen)
    {
        if (!seen.Add(path)) return;   // catalogs may link back to their parent or root
        JsonDocument doc;
        try { doc = JsonDocument.Parse(File.ReadAllBytes(path)); }
        catch (Exception e) when (e is JsonException or IOException or UnauthorizedAccessException)
        {
            if (isRoot) throw new RasterException(path, $"cannot be read as a STAC catalog: {e.Message}");
            items.Add(new StacCatalogItem(path, null, $"cannot be read: {e.Message}"));
            return;
        }
        using (doc)
        {
            var type = doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String
                ? t.GetString() : null;
            switch (type)
            {
                case "Catalog" or "Collection":
                    foreach (var (rel, href) in Links(doc.RootElement))
                    {
                        if (rel is not ("child" or "item")) continue;
                        var target = Resolve(path, href, out var problem);
                        if (target is null) { items.Add(new StacCatalogItem(path, null, $"link '{href}': {problem}")); continue; }
                        if (rel == "child") Walk(target, isRoot: false, items, seen);
                        else Item(target, items, seen);
                    }
                    break;
                case "Feature" when isRoot:
                    seen.Remove(path);
                    Item(path, items, seen);
                    break;
                default:
                    if (isRoot) throw new RasterException(path, $"is not a STAC catalog or collection (\"type\": {(type is null ? "missing" : $"\"{type}\"")}; \"Catalog\" or \"Collection\" expected)");
                    items.Add(new StacCatalogItem(path, null, $"is not a STAC catalog, collection or item (\"type\": {(type is null ? "missing" : $"\"{type}\"")})"));
                    break;
            }
        }
    }

    private static void Item(string path, List<StacCatalogItem> items, HashSet<string> seen)
    {
        if (!seen.Add(path)) return;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
            // The item's time is read at ingestion from the same file; checking it here fails a broken item now, alone.
            AcquisitionTimes.FromStacItemJson(path, doc.RootElement);
            var asset = RasterAsset(doc.RootElement) ?? throw new RasterException(path, "STAC item has no raster asset (an asset with role \"data\", or a GeoTIFF/JPEG 2000 asset)");
            var target = Resolve(path, asset, out var problem) ?? throw new RasterException(path, $"asset '{asset}': {problem}");
            if (!File.Exists(target)) throw new RasterException(path, $"asset '{asset}' does not exist ({target})");
            items.Add(new StacCatalogItem(path, target, null));
        }
        catch (Exception e) when (e is RasterException or JsonException or IOException)
        {
            items.Add(new StacCatalogItem(path, null, e switch
            {
                RasterException r => r.Problem,
                JsonException => $"is not valid JSON ({e.Message})",   // as AcquisitionTimes.FromStacItemFile words it
                _ => e.Message,
            }));
        }
    }

    private static IEnumerable<(string Rel, string Href)> Links(JsonElement root)
    {
        if (!root.TryGetProperty("links", out var links) || links.ValueKind != JsonValueKind.Array) yield break;
        foreach (var link in links.EnumerateArray())
            if (link.ValueKind == JsonValueKind.Object && link.TryGetProperty("rel", out var rel) && rel.ValueKind == JsonValueKind.String
                && link.TryGetProperty("href", out var href) && href.ValueKind == JsonValueKind.String)
                yield return (rel.GetString()!, href.GetString()!);
    }

    /// <summary>The href of the item's raster: the first asset with role "data", else the first GeoTIFF or JPEG 2000 asset.</summary>
    private static string? RasterAsset(JsonElement item)
    {
        if (!item.TryGetProperty("assets", out var assets) || assets.ValueKind != JsonValueKind.Object) return null;
        var all = assets.EnumerateObject().Where(a => a.Value.ValueKind == JsonValueKind.Object && a.Value.TryGetProperty("href", out var h) && h.ValueKind == JsonValueKind.String).ToList();
        static bool HasRole(JsonProperty a, string role) => a.Value.TryGetProperty("roles", out var roles) && roles.ValueKind == JsonValueKind.Array
            && roles.EnumerateArray().Any(r => r.ValueKind == JsonValueKind.String && r.GetString() == role);
        static bool IsRaster(JsonProperty a) => a.Value.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.String
            && (type.GetString()!.Contains("image/tiff", StringComparison.OrdinalIgnoreCase) || type.GetString()!.Contains("image/jp2", StringComparison.OrdinalIgnoreCase));
        var chosen = all.FirstOrDefault(a => HasRole(a, "data")) is { Value.ValueKind: JsonValueKind.Object } d ? d
            : all.FirstOrDefault(IsRaster) is { Value.ValueKind: JsonValueKind.Object } r ? r : default;
        return chosen.Value.ValueKind == JsonValueKind.Object ? chosen.Value.GetProperty("href").GetString() : null;
    }

    /// <summary>A link or asset href as a local path: relative to <paramref name="from"/>'s folder, or a file:// URI.</summary>
    private static string? Resolve(string from, string href, out string? problem)
    {
        problem = null;
        if (Uri.TryCreate(href, UriKind.Absolute, out var uri) && uri.Scheme != "file" && href.Contains("://", StringComparison.Ordinal))
        {
            problem = $"{uri.Scheme} links are not followed (local catalogs only)";
            return null;
        }
        var local = uri is { Scheme: "file" } ? uri.LocalPath : href;
        return Path.GetFullPath(Path.IsPathRooted(local) ? local : Path.Combine(Path.GetDirectoryName(from)!, local));
    }
}
