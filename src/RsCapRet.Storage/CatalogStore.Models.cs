namespace RsCapRet.Storage;

public sealed partial class CatalogStore
{
    /// <summary>A model's name and version, to name it in messages; null when no model has that id.</summary>
    public async Task<(string Name, string Version)?> ModelNameAsync(int modelId, CancellationToken ct = default)
    {
        await using var cmd = ReadSource.CreateCommand("SELECT name, version FROM models WHERE id = $1");
        cmd.Parameters.Add(new() { Value = modelId });
        await using var r = await cmd.ExecuteReaderAsync(ct);
        return await r.ReadAsync(ct) ? (r.GetString(0), r.GetString(1)) : null;
    }
}
