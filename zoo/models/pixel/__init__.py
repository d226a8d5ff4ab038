"""The pixel-autoregressive family (module.py): one LightningModule, four registered frame decoders."""

from zoo.models.pixel.module import (
    DiagonalBiLSTMConfig,
    GatedPixelCNNConfig,
    PixelCNNConfig,
    PixelVideoModel,
    RowLSTMConfig,
)
from zoo.registry import register_model

PIXEL_RNN = "van den Oord, Kalchbrenner, Kavukcuoglu, Pixel Recurrent Neural Networks, ICML 2016, " \
            "https://arxiv.org/abs/1601.06759"
GATED = "van den Oord et al., Conditional Image Generation with PixelCNN Decoders, NeurIPS 2016, " \
        "https://arxiv.org/abs/1606.05328"
VIDEO = "; video context after Kalchbrenner et al., Video Pixel Networks, ICML 2017"


@register_model("pixelcnn", description="PixelCNN frame decoder (masked convolutions, blind spot) + causal temporal "
                "context; 256-way softmax per sub-pixel, bits/dim", paper=PIXEL_RNN + VIDEO)
class PixelCNN(PixelVideoModel):
    """PixelCNN (PixelRNN paper, Sec. 3.5) over a causal temporal context; see module.py."""

    config_class = PixelCNNConfig
    decoder_key = "pixelcnn"


@register_model("gated_pixelcnn", description="Gated PixelCNN frame decoder (vertical + horizontal stacks, no blind "
                "spot, class-conditional option) + causal temporal context", paper=GATED + VIDEO)
class GatedPixelCNN(PixelVideoModel):
    """Gated / Conditional PixelCNN (van den Oord et al. 2016b, Sec. 2) over a causal temporal context."""

    config_class = GatedPixelCNNConfig
    decoder_key = "gated_pixelcnn"


@register_model("row_lstm", description="PixelRNN Row LSTM frame decoder (triangular receptive field) + causal "
                "temporal context", paper=PIXEL_RNN + VIDEO)
class RowLSTM(PixelVideoModel):
    """Row LSTM (PixelRNN paper, Sec. 3.1) over a causal temporal context."""

    config_class = RowLSTMConfig
    decoder_key = "row_lstm"


@register_model("diagonal_bilstm", description="PixelRNN Diagonal BiLSTM frame decoder (full causal context) + "
                "causal temporal context", paper=PIXEL_RNN + VIDEO)
class DiagonalBiLSTM(PixelVideoModel):
    """Diagonal BiLSTM (PixelRNN paper, Sec. 3.2) over a causal temporal context."""

    config_class = DiagonalBiLSTMConfig
    decoder_key = "diagonal_bilstm"
