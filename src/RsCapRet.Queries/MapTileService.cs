using System.Security.Cryptography;
using System.Text;
using RsCapRet.Core;
using RsCapRet.Pipeline;
using RsCapRet.Raster;
using RsCapRet.Storage;

namespace RsCapRet.Queries;

/// <summary>A rendered map tile: the PNG, the scenes left out and why, and whether it came from the cache.</summary>
public sealed record MapTileResult(byte[] Png, IReadOnlyList<(long SceneId, string Problem)> Missing, bool FromCache);

/// <summary>
/// The map's imagery layer: Web Mercator tiles rendered on demand from the ingested scenes (GET /tiles/{z}/{x}/{y}.png).
/// The scenes of a tile come from the catalogue (completed, footprint meets the tile, newest drawn last); each is drawn
/// only while its file is the one that was ingested (<see cref="RegisteredSceneFiles"/>), else it is left out and
/// reported. Rendered tiles are kept in a <see cref="TileDiskCache"/> under a key of the tile and the exact scene
/// files drawn, so a re-ingested or returned file makes new tiles rather than stale ones. Open scenes are kept (at
/// most <see cref="MaxOpenScenes"/>), since opening one computes its stretch.
/// </summary>
public sealed class MapTileService(TileDiskCache cache, RegisteredSceneFiles files) : IDisposable
{
    public const int MaxOpenScenes = 16;
    private static readonly byte[] Transparent = PngEncoder.EncodeRgba(SceneMapRenderer.TileSize, SceneMapRenderer.TileSize,
        new byte[SceneMapRenderer.TileSize * SceneMapRenderer.TileSize * 4]);

    private readonly Dictionary<string, (SceneMapRenderer Renderer, object Gate)> _open = new();
    private readonly LinkedList<string> _recent = new();

    public async Task<MapTileResult> RenderAsync(CatalogStore store, MapTileAddress tile, long? sceneId,
        DateTimeOffset? acquiredBefore = null, CancellationToken ct = default)
    {
        var (west, south, east, north) = tile.LonLat;
        var scenes = await store.ScenesForMapAsync(west, south, east, north, sceneId, ct: ct, acquiredBefore: acquiredBefore);
        var usable = new List<MapScene>();
        var missing = new List<(long, string)>();
        foreach (var scene in scenes)
        {
            if (await files.ProblemAsync(scene.File, ct) is { } problem) missing.Add((scene.Id, problem));
            else usable.Add(scene);
        }
        if (usable.Count == 0) return new MapTileResult(Transparent, missing, false);

        var key = Key(tile, usable);
        if (cache.TryGet(key) is { } cached) return new MapTileResult(cached, missing, true);
        const int n = SceneMapRenderer.TileSize;
        var rgba = new byte[n * n * 4];
        bool drawn = false, failed = false;
        foreach (var scene in usable)
        {
            ct.ThrowIfCancellationRequested();
            byte[]? layer;
            try { layer = WithRenderer(scene.File, r => r.Render(tile)); }
            catch (RasterException e) { missing.Add((scene.Id, e.Message)); failed = true; continue; }
            if (layer is null) continue;
            drawn = true;
            for (var k = 0; k < n * n; k++)
                if (layer[k * 4 + 3] != 0) Buffer.BlockCopy(layer, k * 4, rgba, k * 4, 4);   // a later scene covers an earlier one
        }
        var png = drawn ? PngEncoder.EncodeRgba(n, n, rgba) : Transparent;
        // The key names the scenes meant to be drawn: an answer missing one of them is not kept.
        if (!failed) cache.Put(key, png, usable.Select(u => u.Id));
        return new MapTileResult(png, missing, false);
    }

    private static string Key(MapTileAddress tile, IReadOnlyList<MapScene> scenes)
    {
        var text = $"v1 {tile.Z}/{tile.X}/{tile.Y} " + string.Join(' ', scenes.Select(s => $"{s.Id}:{s.File.ContentSha256}"));
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));
    }

    private T WithRenderer<T>(SceneFile file, Func<SceneMapRenderer, T> draw)
    {
        var id = file.Path + "\n" + file.ContentSha256;
        (SceneMapRenderer Renderer, object Gate) entry;
        lock (_open)
        {
            if (!_open.TryGetValue(id, out entry))
            {
                entry = (SceneMapRenderer.Open(file.Path), new object());
                _open[id] = entry;
                while (_open.Count > MaxOpenScenes && _recent.Last is { } oldest)
                {
                    _recent.RemoveLast();
                    if (_open.Remove(oldest.Value, out var evicted)) lock (evicted.Gate) evicted.Renderer.Dispose();
                }
            }
            _recent.Remove(id);
            _recent.AddFirst(id);
        }
        lock (entry.Gate)
            if (!entry.Renderer.IsDisposed) return draw(entry.Renderer);
        return WithRenderer(file, draw);   // evicted while this request waited: open it again
    }

    public void Dispose()
    {
        lock (_open)
        {
            foreach (var (renderer, gate) in _open.Values) lock (gate) renderer.Dispose();
            _open.Clear();
            _recent.Clear();
        }
    }
}

/// <summary>
/// Rendered map tiles on disk, at most <see cref="MaxBytes"/> in all: when a write takes the folder past it, the least
/// recently used tiles go first (a read marks a tile used). Writes go to a temporary file and are renamed into place,
/// so a reader never sees half a tile.
/// </summary>
public sealed class TileDiskCache
{
    private readonly object _gate = new();
    private long _bytes;

    public string Directory { get; }
    public long MaxBytes { get; }
    public long Bytes { get { lock (_gate) return _bytes; } }

    public TileDiskCache(string directory, long maxBytes)
    {
        if (maxBytes < 1) throw new ArgumentOutOfRangeException(nameof(maxBytes), "the tile cache needs a positive size");
        Directory = System.IO.Path.GetFullPath(directory);
        MaxBytes = maxBytes;
        System.IO.Directory.CreateDirectory(Directory);
        _bytes = Files().Sum(f => f.Length);
    }

    /// <summary>RSCAPRET_TILE_CACHE (folder, default .data/tile-cache of the checkout, else the temp folder) and RSCAPRET_TILE_CACHE_MB (default 512).</summary>
    public static TileDiskCache FromEnvironment()
    {
        var env = Core.Configuration.EnvironmentSettings.FromEnvironment();
        var options = Core.Configuration.EnvironmentSettings.Load<TileCacheOptions>(env);
        var dir = options.Directory is { } d ? d
            : Core.Configuration.EnvironmentSettings.Load<Core.Configuration.DataPathOptions>(env).DataDirectory is { } data ? System.IO.Path.Combine(data, "tile-cache")
            : RepositoryPaths.TryFindRoot() is { } root ? System.IO.Path.Combine(root, ".data", "tile-cache")
            : System.IO.Path.Combine(System.IO.Path.GetTempPath(), "rscapret-tile-cache");
        return new TileDiskCache(dir, options.SizeMb * 1024 * 1024);
    }

    private string PathOf(string key) => System.IO.Path.Combine(Directory, key[..2], key + ".png");

    private IEnumerable<FileInfo> Files() => new DirectoryInfo(Directory).EnumerateFiles("*.png", SearchOption.AllDirectories);

    public byte[]? TryGet(string key)
    {
        var path = PathOf(key);
        try
        {
            var bytes = File.ReadAllBytes(path);
            File.SetLastWriteTimeUtc(path, DateTime.UtcNow);   // used now
            return bytes;
        }
        catch (IOException) { return null; }   // not cached, or evicted meanwhile: render it
    }

    /// <summary>
    /// Which scenes a cached tile drew, beside it ("KEY.png.scenes", their ids one a line), so deleting a scene can
    /// drop the tiles that show it (<see cref="RemoveScenes"/>).
    /// </summary>
    private static string ScenesOf(string pngPath) => pngPath + ".scenes";

    /// <summary>Deletes the cached tiles that drew any of <paramref name="sceneIds"/>; returns how many.</summary>
    public int RemoveScenes(IReadOnlySet<long> sceneIds)
    {
        if (sceneIds.Count == 0 || !System.IO.Directory.Exists(Directory)) return 0;
        var removed = 0;
        foreach (var sidecar in new DirectoryInfo(Directory).EnumerateFiles("*.png.scenes", SearchOption.AllDirectories))
        {
            try
            {
                if (!File.ReadLines(sidecar.FullName).Any(l => long.TryParse(l, out var id) && sceneIds.Contains(id))) continue;
                var png = new FileInfo(sidecar.FullName[..^".scenes".Length]);
                if (png.Exists) { lock (_gate) _bytes -= png.Length; png.Delete(); }
                sidecar.Delete();
                removed++;
            }
            catch (IOException) { }   // evicted meanwhile
        }
        return removed;
    }

    public void Put(string key, byte[] png, IEnumerable<long>? sceneIds = null)
    {
        var path = PathOf(key);
        System.IO.Directory.CreateDirectory(System.IO.Path.GetDirectoryName(path)!);
        if (sceneIds is not null) File.WriteAllLines(ScenesOf(path), sceneIds.Select(id => id.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        var tmp = path + "." + Guid.NewGuid().ToString("N") + ".tmp";
        File.WriteAllBytes(tmp, png);
        long replaced = File.Exists(path) ? new FileInfo(path).Length : 0;
        File.Move(tmp, path, overwrite: true);
        lock (_gate)
        {
            _bytes += png.Length - replaced;
            if (_bytes <= MaxBytes) return;
            // Evict the least recently used down to 90 % of the cap, so eviction is not paid on every write.
            foreach (var f in Files().OrderBy(f => f.LastWriteTimeUtc))
            {
                if (_bytes <= MaxBytes * 9 / 10) break;
                try { var length = f.Length; f.Delete(); File.Delete(ScenesOf(f.FullName)); _bytes -= length; }
                catch (IOException) { }
            }
        }
    }
}
