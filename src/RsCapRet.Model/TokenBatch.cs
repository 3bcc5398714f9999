using static TorchSharp.torch;

namespace RsCapRet.Model;

/// <summary>Token id rows of different lengths as one right-padded batch with its attention mask.</summary>
public static class TokenBatch
{
    public static (Tensor Ids, Tensor Mask) PadRight(IReadOnlyList<IReadOnlyList<int>> rows, long padId = 0)
    {
        if (rows.Count == 0) throw new ArgumentException("No token rows.", nameof(rows));
        var len = rows.Max(r => r.Count);
        var ids = new long[rows.Count * len];
        var mask = new long[rows.Count * len];
        for (var b = 0; b < rows.Count; b++)
            for (var t = 0; t < len; t++)
            {
                ids[b * len + t] = t < rows[b].Count ? rows[b][t] : padId;
                mask[b * len + t] = t < rows[b].Count ? 1 : 0;
            }
        return (tensor(ids, [rows.Count, len]), tensor(mask, [rows.Count, len]));
    }
}
