using System.Collections.Concurrent;
using RsCapRet.Storage;

namespace RsCapRet.Pipeline;

/// <summary>
/// A request may make the server read a scene file only while it is the file that was ingested: same size, and the
/// same SHA-256. Hashing a scene is costly, so a file's hash is computed once per version (path, size and
/// modification time) and remembered (bounded); a replaced or grown file, or a path that now leads elsewhere, no
/// longer matches and is refused.
/// </summary>
public sealed class RegisteredSceneFiles
{
    private const int MaxRemembered = 4096;
    private readonly ConcurrentDictionary<(string Path, long Size, DateTime Modified), string> _hashes = new();

    /// <summary>Null when <paramref name="registered"/>'s file is unchanged, else what is wrong with it.</summary>
    public async Task<string?> ProblemAsync(SceneFile registered, CancellationToken ct = default)
    {
        var info = new FileInfo(registered.Path);
        if (!info.Exists) return "does not exist";
        if (info.Length != registered.SizeBytes) return $"the scene file changed since it was ingested ({info.Length} bytes, {registered.SizeBytes} when ingested)";
        var key = (info.FullName, info.Length, info.LastWriteTimeUtc);
        if (!_hashes.TryGetValue(key, out var hash))
        {
            hash = (await SceneIngestor.DescribeFileAsync(registered.Path, ct)).ContentSha256;
            if (_hashes.Count >= MaxRemembered) _hashes.Clear();
            _hashes[key] = hash;
        }
        return hash == registered.ContentSha256 ? null : "the scene file changed since it was ingested (its SHA-256 differs)";
    }
}
