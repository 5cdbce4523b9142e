include $(sort $(wildcard $(BR2_EXTERNAL_STREAMCAM_PATH)/package/*/*.mk))
